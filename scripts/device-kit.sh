#!/usr/bin/env bash
# Makes the kit an engine-only build needs on a GPU machine that has a compiler, CMake and the
# CUDA toolkit but no network and none of the project's library packages: copies of the
# header-only CLI11 and nlohmann_json and of GoogleTest's sources, taken from this machine's
# Debian packages (libcli11-dev, nlohmann-json3-dev, googletest). Run from the repository root:
#
#   scripts/device-kit.sh [DIR]        # default build/device-kit (ignored by git)
#
# then take DIR along to the GPU machine; scripts/device-check.sh uses build/device-kit when it is
# there (cmake -DSEXTANT_ENGINE_ONLY=ON -DSEXTANT_DEVICE_KIT=DIR).
set -euo pipefail
DIR=${1:-build/device-kit}
need=(/usr/include/CLI/CLI.hpp /usr/include/nlohmann/json.hpp /usr/src/googletest/CMakeLists.txt)
for f in "${need[@]}"; do
  if [[ ! -f $f ]]; then
    echo "device-kit: $f is missing (apt-get install libcli11-dev nlohmann-json3-dev googletest)" >&2
    exit 2
  fi
done
rm -rf "$DIR"
mkdir -p "$DIR/include"
cp -r /usr/include/CLI /usr/include/nlohmann "$DIR/include/"
cp -r /usr/src/googletest "$DIR/googletest"
echo "device-kit: $(du -sh "$DIR" | cut -f1) in $DIR"
