#!/usr/bin/env bash
# One command on a fresh Debian 12 machine, as root: installs, builds, starts the aggregator and
# the sensor on this host with the default configuration, and shows live records until Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

if [[ $(id -u) -ne 0 ]]; then
  echo "quickstart.sh: must run as root (eBPF and apt-get); try: sudo $0" >&2
  exit 1
fi

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"

bin=${NODESCOPE_BUILD_DIR:-$root/build}/bin
logs=$(mktemp -d /tmp/nodescope-quickstart-XXXXXX)
empty=$logs/empty.yaml
: >"$empty"   # an empty file is the default configuration

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "quickstart: stopped; logs in $logs"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

"$bin/nodescope-aggregator" --config "$empty" >"$logs/aggregator.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:9971/readyz >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$logs/aggregator.log" >&2; exit 1; }
  sleep 0.1
done

"$bin/nodescope-sensor" --config "$empty" >"$logs/sensor.log" 2>&1 &
pids+=($!)
sleep 1
kill -0 "${pids[1]}" 2>/dev/null || { cat "$logs/sensor.log" >&2; exit 1; }

echo "quickstart: aggregator on :9970 (gRPC) and :9971 (/metrics), sensor on 127.0.0.1:6061"
echo "quickstart: logs in $logs; Ctrl-C to stop"
"$bin/nodescope" status --server 127.0.0.1:9970 || true
"$bin/nodescope" observe --server 127.0.0.1:9970 --follow -o table
