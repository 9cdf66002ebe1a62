#!/usr/bin/env bash
# The one test command: installs dependencies, builds, and runs every test (unit, bpf,
# integration) through CTest. Needs root: the bpf and integration tests load eBPF programs.
# Pass a CTest label to run one group: ./scripts/test.sh unit
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

if [[ $(id -u) -ne 0 ]]; then
  echo "test.sh: must run as root (eBPF and apt-get); try: sudo $0" >&2
  exit 1
fi

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"

cd "${NODESCOPE_BUILD_DIR:-$root/build}"
label=()
[[ $# -gt 0 ]] && label=(-L "$1")
# One test at a time: the bpf and integration tests each start real sensors and aggregators.
ctest --output-on-failure --timeout 600 "${label[@]}"
