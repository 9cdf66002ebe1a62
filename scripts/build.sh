#!/usr/bin/env bash
# Configures (once) and builds nodescope into build/; binaries land in build/bin/.
# Incremental: a second run only rebuilds what changed. Extra arguments go to `cmake --build`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${NODESCOPE_BUILD_DIR:-$root/build}
jobs=${NODESCOPE_JOBS:-2}

if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}"
fi
cmake --build "$build" -j"$jobs" "$@"
