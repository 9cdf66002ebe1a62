#!/usr/bin/env bash
# The floor under ebpf-kernel's wrk -> nginx goal: empty BPF programs on the hook points its
# default families need, against nothing attached, in alternating pairs (the same shape as
# bench_netflow --kernel). "none" attaches an object without programs: the pairs' noise.
#
#   bench/hook_floor/run.sh [PAIRS]     (root; nginx, wrk, clang, gcc, libbpf-dev, bpftool)
#
# Prints, per hook group, each pair's req/s without and with, and the mean and median ratio.
set -euo pipefail
pairs=${1:-16}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d /tmp/nodescope-hook-floor.XXXXXX)
nginx_pid=""
loader_pid=""
cleanup() {
  [ -n "$loader_pid" ] && kill "$loader_pid" 2>/dev/null && wait "$loader_pid" 2>/dev/null
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
bpftool btf dump file /sys/kernel/btf/vmlinux format c > "$dir/vmlinux.h"
for group in none SYSEXIT SOCK IRQ ALL; do
  case $group in
    none) defs=() ;;
    ALL) defs=(-DSYSEXIT -DSOCK -DIRQ) ;;
    *) defs=("-D$group") ;;
  esac
  clang -O2 -g -target bpf -I"$dir" "${defs[@]}" -c "$here/hooks.bpf.c" -o "$dir/$group.o"
done
gcc -O2 "$here/loader.c" -o "$dir/loader" -lbpf

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$dir/html" "$dir/tmp"
head -c 1024 /dev/zero | tr '\0' 'x' > "$dir/html/1k.bin"
cat > "$dir/nginx.conf" <<CONF
user root;
worker_processes 1;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
  access_log $dir/access.log;
  client_body_temp_path $dir/tmp;
  default_type application/octet-stream;
  sendfile on;
  keepalive_timeout 65;
  keepalive_requests 1000;
  server { listen 127.0.0.1:$port; root $dir/html; }
}
CONF
nginx -c "$dir/nginx.conf" -p "$dir" > "$dir/nginx.out" 2>&1 &
nginx_pid=$!
for _ in $(seq 50); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/1k.bin" && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$port/1k.bin" ||
  { echo "hook_floor: nginx does not serve on port $port: $(tail -3 "$dir/error.log")" >&2; exit 1; }

# Both run in this shell, not in a command substitution, so that the EXIT trap sees the
# loader's pid and detaches its programs whatever stops the script.
rate() {
  result=$(wrk -t 2 -c 50 -d 5s "http://127.0.0.1:$port/1k.bin" | awk '/Requests\/sec/ {print $2}')
  [ -n "$result" ] || { echo "hook_floor: wrk reported no request rate" >&2; exit 1; }
}
attached_rate() {
  "$dir/loader" "$1" 2> "$dir/loader.err" &
  loader_pid=$!
  for _ in $(seq 50); do grep -q attached "$dir/loader.err" && break; sleep 0.1; done
  grep -q attached "$dir/loader.err" || { cat "$dir/loader.err" >&2; exit 1; }
  sleep 1
  rate
  kill "$loader_pid"
  wait "$loader_pid" 2>/dev/null || true
  loader_pid=""
}

echo "wrk -t 2 -c 50 -d 5s -> nginx (1 worker, 1 KiB, keep-alive); $pairs pairs per group, order alternating"
for group in none SYSEXIT SOCK IRQ ALL; do
  ratios=()
  for i in $(seq "$pairs"); do
    if (( i % 2 )); then
      rate; off=$result
      attached_rate "$dir/$group.o"; on=$result
    else
      attached_rate "$dir/$group.o"; on=$result
      rate; off=$result
    fi
    ratios+=("$(awk -v a="$off" -v b="$on" 'BEGIN {printf "%.3f", b / a}')")
    printf '  %-7s pair %2d: req/s %8.0f / %8.0f = %s\n' "$group" "$i" "$off" "$on" "${ratios[-1]}"
  done
  printf '%s\n' "${ratios[@]}" | sort -n | awk -v g="$group" \
    '{r[NR] = $1; s += $1} END {m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2;
      printf "%-7s empty programs: mean ratio %.3f, median %.3f (%d pairs, %.3f to %.3f)\n",
             g, s / NR, m, NR, r[1], r[NR]}'
done
