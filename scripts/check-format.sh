#!/usr/bin/env bash
# Fails when a C++/CUDA source of the project differs from what .clang-format asks for.
# usage: check-format.sh [SOURCE_DIR]    exit 0 clean, 1 unformatted files, 77 no clang-format
set -u
root=${1:-$(dirname "$0")/..}
cd "$root" || exit 1
fmt=$(command -v clang-format || command -v clang-format-14 || true)
if [ -z "$fmt" ]; then
  echo "clang-format not installed: format check skipped"
  exit 77
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files --cached --others --exclude-standard -- \
    '*.h' '*.cpp' '*.cu' '*.cuh' | grep -v '^tests/layout/fixture_bad/')
else
  mapfile -t files < <(find app ui engine connectors tests -type f \
    \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' \) -not -path 'tests/layout/fixture_bad/*')
fi
bad=0
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  if ! "$fmt" --dry-run -Werror --style=file "$f" >/dev/null 2>&1; then
    echo "not formatted: $f   (fix: clang-format -i $f)"
    bad=1
  fi
done
[ $bad -eq 0 ] && echo "format check: ${#files[@]} files clean"
exit $bad
