#!/usr/bin/env bash
# scripts/fuzz.sh TARGET [SECONDS] [LIBFUZZER-ARGS...]: builds one libFuzzer target (the `fuzz`
# preset: clang, ASan+UBSan) and runs it for SECONDS (default 60) from its seed corpus
# (tests/fuzz/corpus/TARGET) and what earlier runs found (build/fuzz/corpus/TARGET).
# TARGET `all` runs every target for SECONDS each; `list` names them.
#
# It prints one line per target: executions, coverage (libFuzzer's cov: edges and ft: features),
# the corpus size and the crashes. A crash leaves its input in build/fuzz/crashes/TARGET/ and the
# exit status is 1: fix the bug, then copy the input to tests/fuzz/regressions/TARGET/, where
# CTest (fuzz.TARGET) replays it in every build from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(gguf tokenizer spec_yaml policy_yaml agent_config price_catalog openai_request
         http_request agent_proto)
target=${1:-}
seconds=${2:-60}
shift $(( $# > 2 ? 2 : $# ))
case "$target" in
  list) printf '%s\n' "${targets[@]}"; exit 0 ;;
  all) run=("${targets[@]}") ;;
  "") echo "usage: scripts/fuzz.sh TARGET|all|list [SECONDS] [LIBFUZZER-ARGS...]" >&2; exit 2 ;;
  *)
    if [[ ! " ${targets[*]} " == *" $target "* ]]; then
      echo "fuzz.sh: no target '$target' (scripts/fuzz.sh list)" >&2; exit 2
    fi
    run=("$target") ;;
esac

if [ "${FUZZ_SKIP_BUILD:-0}" != 1 ]; then
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz --target "${run[@]/#/fuzz_}" >/dev/null
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in "${run[@]}"; do
  corpus=build/fuzz/corpus/$t
  crashes=build/fuzz/crashes/$t
  mkdir -p "$corpus" "$crashes"
  log=build/fuzz/logs/$t.log
  mkdir -p "$(dirname "$log")"
  rc=0
  build/fuzz/tests/fuzz/fuzz_"$t" -max_total_time="$seconds" -print_final_stats=1 \
    -timeout=10 -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$crashes/" \
    "$@" "$corpus" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
  found=$(find "$crashes" -type f | wc -l)
  printf 'fuzz %-15s %4ss  execs %-9s cov %-6s ft %-6s corpus %-10s crashes %s%s\n' "$t" \
    "$seconds" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$found" \
    "$([ "$rc" -ne 0 ] && echo "  (exit $rc, see $log)")"
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then status=1; fi
done
exit $status
