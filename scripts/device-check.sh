#!/usr/bin/env bash
# Device check for a machine with an NVIDIA GPU and the CUDA toolkit (no network needed): builds
# the engine alone (SEXTANT_ENGINE_ONLY: the engine, sextant's engine verbs and the engine tests,
# which need no library beyond the C++ runtime; CLI11, nlohmann_json and GoogleTest come from the
# machine's packages or from build/device-kit, made by scripts/device-kit.sh and taken along)
# with the CUDA backend for this machine's GPU, runs the GPU tests against the CPU reference,
# synthesizes TinyLlama-1.1B-shaped models (F16, Q8_0, Q4_0) and benchmarks each with
# `sextant bench --backend cuda`, and Q4_0 once more with decode graphs off (SEXTANT_GPU_GRAPHS=0)
# to show what they gain. Run from the repository root:
#
#   scripts/device-check.sh
#
# Three files go to $OUT when it is set, else build/device-check/out: summary.json, device-check.log
# (every step's output, in order) and gpu_tests.json (GoogleTest's report).
# The whole run is bounded to DEVICE_CHECK_BUDGET seconds (default 450, under 8 minutes): every
# step has a timeout and later steps get what is left. Exit status: 0 when every step passed,
# 1 when one failed (the summary says which), 2 when the machine lacks a prerequisite.
#
# Environment:
#   OUT                  where logs and summary.json go
#   DEVICE_CHECK_BUILD   build directory (default build/device-check)
#   DEVICE_CHECK_BUDGET  seconds for the whole run (default 450)
#   DEVICE_CHECK_STORIES a stories260K.gguf to use for the end-to-end test when ../shared has none
#   CUDA_ARCH            CUDA architectures (default "native": the GPU of this machine)
#   DEVICE_KIT           the kit folder (default build/device-kit when it exists)
set -uo pipefail

START=$(date +%s)
BUDGET=${DEVICE_CHECK_BUDGET:-450}
OUT_DIR=${OUT:-build/device-check/out}
BUILD=${DEVICE_CHECK_BUILD:-build/device-check}
MODELS=${BUILD}/models
ARCH=${CUDA_ARCH:-native}
JOBS=$(nproc 2>/dev/null || echo 4)
LOGS=${BUILD}/logs
mkdir -p "$OUT_DIR" "$BUILD" "$MODELS" "$LOGS"
STEPS_FILE=$LOGS/steps.tsv
: >"$STEPS_FILE"

export PATH=/usr/local/cuda/bin:$PATH

log() { echo "[device-check $(($(date +%s) - START))s] $*"; }

remaining() { echo $((BUDGET - ($(date +%s) - START))); }

# step NAME MAX_SECONDS CMD...: runs CMD with a timeout of min(MAX_SECONDS, time left - 10 s),
# output to $LOGS/NAME.log; records name, exit status and seconds in steps.tsv.
step() {
  local name=$1 max=$2
  shift 2
  local left=$(($(remaining) - 10))
  local limit=$((max < left ? max : left))
  if ((limit <= 0)); then
    log "$name: skipped, no time left"
    printf '%s\t%s\t%s\n' "$name" "skipped" 0 >>"$STEPS_FILE"
    return 124
  fi
  log "$name (limit ${limit}s)"
  local t0 rc
  t0=$(date +%s)
  timeout --signal=TERM --kill-after=5 "$limit" "$@" >"$LOGS/$name.log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" $(($(date +%s) - t0)) >>"$STEPS_FILE"
  log "$name: exit $rc in $(($(date +%s) - t0))s"
  return $rc
}

# Prerequisites: the GPU, nvcc, CMake, Ninja, python3 (for the summary).
missing=()
command -v nvidia-smi >/dev/null || missing+=(nvidia-smi)
command -v nvcc >/dev/null || missing+=(nvcc)
command -v cmake >/dev/null || missing+=(cmake)
command -v ninja >/dev/null || missing+=(ninja)
command -v python3 >/dev/null || missing+=(python3)
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv 2>&1
  nvcc --version 2>&1 | tail -2
  cmake --version 2>&1 | head -1
} >"$LOGS/machine.log"
if ((${#missing[@]} > 0)); then
  log "missing: ${missing[*]}"
  printf '{"ok": false, "error": "missing prerequisites: %s"}\n' "${missing[*]}" >"$OUT_DIR/summary.json"
  exit 2
fi

# The end-to-end test reads ../shared/models/stories260K.gguf (the tests' SEXTANT_SHARED_DIR).
if [[ ! -f ../shared/models/stories260K.gguf && -f ${DEVICE_CHECK_STORIES:-} ]]; then
  mkdir -p ../shared/models && cp "$DEVICE_CHECK_STORIES" ../shared/models/stories260K.gguf
fi

failed=0
KIT=${DEVICE_KIT:-build/device-kit}
kit_args=()
[[ -d $KIT ]] && kit_args=(-DSEXTANT_DEVICE_KIT="$(cd "$KIT" && pwd)")
step configure 150 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSEXTANT_ENGINE_ONLY=ON -DSEXTANT_WITH_CUDA=ON -DSEXTANT_WITH_HIP=OFF \
  -DCMAKE_CUDA_ARCHITECTURES="$ARCH" "${kit_args[@]}" || failed=1
if ((failed)); then
  log "configure failed (see configure in device-check.log; without the packages, make the kit with scripts/device-kit.sh)"
else
  step build 300 cmake --build "$BUILD" -j "$JOBS" --target sextant engine_tests || failed=1
fi

SEXTANT=$BUILD/app/sextant/sextant
TESTS=$BUILD/tests/engine_tests
if ((!failed)); then
  step gpu_tests 120 "$TESTS" --gtest_filter='GpuProbe*:GpuBackendChoice*:AllOps/GpuOpTest*:Stories260K/GpuGenerationTest*' \
    --gtest_output="json:$OUT_DIR/gpu_tests.json" || failed=1
  for type in f16 q8_0 q4_0; do
    model=$MODELS/tinyllama-1.1b-$type.gguf
    if [[ ! -f $model ]]; then
      step "synth_$type" 90 "$SEXTANT" model synth --shape tinyllama-1.1b --type "$type" \
        --seed 1 -o "$model" || { failed=1; continue; }
    fi
    step "bench_$type" 90 "$SEXTANT" bench "$model" --backend cuda -o json -p 512 -n 128 -r 3 ||
      failed=1
  done
  # The same Q4_0 generation with decode graphs off: what capturing the decode step gains.
  model=$MODELS/tinyllama-1.1b-q4_0.gguf
  [[ -f $model ]] && { step bench_q4_0_nographs 60 env SEXTANT_GPU_GRAPHS=0 "$SEXTANT" bench \
    "$model" --backend cuda -o json -p 512 -n 128 -r 3 || failed=1; }
fi

# Summary: every step's status and time, the test counts, each benchmark with the achieved
# bandwidth of generation (weight bytes per token x tokens/s) as a fraction of the H200's HBM
# peak (4.8 TB/s; DEVICE_CHECK_PEAK_GBS for another GPU).
python3 - "$LOGS" "$OUT_DIR" "$failed" "$(($(date +%s) - START))" <<'EOF'
import json, os, sys
logs, out, failed, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
peak = float(os.environ.get("DEVICE_CHECK_PEAK_GBS", "4800")) * 1e9
summary = {"ok": failed == 0, "seconds": seconds, "steps": [], "benchmarks": []}
with open(os.path.join(logs, "steps.tsv")) as f:
    for line in f:
        name, rc, secs = line.rstrip("\n").split("\t")
        summary["steps"].append({"name": name, "exit": rc, "seconds": int(secs)})
try:
    with open(os.path.join(logs, "machine.log")) as f:
        summary["machine"] = f.read().strip().splitlines()
except OSError:
    pass
try:
    with open(os.path.join(out, "gpu_tests.json")) as f:
        t = json.load(f)
    cases = [c for s in t.get("testsuites", []) for c in s.get("testsuite", [])]
    skipped = [c["name"] for c in cases if c.get("result") == "SKIPPED"]
    failures = [c["name"] for c in cases if c.get("failures")]
    summary["tests"] = {"run": len(cases), "failed": failures, "skipped": len(skipped)}
except (OSError, ValueError) as e:
    summary["tests"] = {"error": str(e)}
for name in ("f16", "q8_0", "q4_0", "q4_0_nographs"):
    path = os.path.join(logs, "bench_%s.log" % name)
    try:
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if l.startswith("{")]
        b = json.loads(lines[-1])
    except (OSError, ValueError, IndexError):
        summary["benchmarks"].append({"type": name, "error": "no result (see bench_%s.log)" % name})
        continue
    gbs = b.get("model_size_bytes", 0) * b.get("tg_tps", 0)
    b["type"] = name
    b["tg_bytes_per_s"] = gbs
    b["tg_fraction_of_peak_bandwidth"] = gbs / peak if peak > 0 else 0
    summary["benchmarks"].append(b)
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
print(json.dumps(summary, indent=1))
EOF
# One log file for all steps, in the order they ran.
{
  echo "== machine"
  cat "$LOGS/machine.log"
  cut -f1 "$STEPS_FILE" | while read -r name; do
    echo "== $name"
    tail -c 200000 "$LOGS/$name.log" 2>/dev/null
  done
} >"$OUT_DIR/device-check.log"
log "done in $(($(date +%s) - START))s; summary: $OUT_DIR/summary.json"
exit $failed
