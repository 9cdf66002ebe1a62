#!/usr/bin/env bash
# Installs every build, run and test dependency of nodescope from Debian 12's packages.
# Idempotent: packages already present are left alone; safe to run on every CI start.
# --runtime installs only what the built binaries load (the Docker images' runtime stage);
# --list-runtime prints that list, one package a line (tests/helm checks it against ldd).
set -euo pipefail

# The shared libraries nodescope-sensor, nodescope-aggregator and nodescope load, by the Debian
# package that ships each (tests/helm/runtime_deps_test.cc fails naming any library missing here).
runtime_packages=(
  libc6 libgcc-s1 libstdc++6 zlib1g libssl3 ca-certificates
  libbpf1 libelf1 libmnl0 libnetfilter-conntrack3 libnfnetlink0
  libgrpc29 libgrpc++1.51 libprotobuf32 libabsl20220623 libc-ares2 libre2-9
  libprometheus-cpp-core1.0 libyaml-cpp0.7 libspdlog1.10 libfmt9
)

mode=all
case "${1:-}" in
  "") ;;
  --runtime) mode=runtime ;;
  --list-runtime) printf '%s\n' "${runtime_packages[@]}"; exit 0 ;;
  *) echo "install-deps.sh: unknown argument '$1' (accepts --runtime, --list-runtime)" >&2; exit 2 ;;
esac

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps.sh: must run as root (apt-get); try: sudo $0" >&2
  exit 1
fi

packages=(
  # toolchain
  build-essential cmake pkg-config git ca-certificates
  # BPF: clang for -target bpf, libbpf for loading, bpftool for skeletons
  clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev
  # transport and serialization
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libssl-dev
  # HTTP (Beast/Asio are header-only in libboost-dev), metrics, config, JSON, CLI, logging
  libboost-dev prometheus-cpp-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
  libspdlog-dev libfmt-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # peers the integration tests drive
  curl procps iproute2 util-linux xfsprogs nftables prometheus
  # netflow tests and bench: web server, load generator, the tcplife peer, ping for the delay line
  nginx wrk libbpf-tools iputils-ping
  # dnsflow tests: the DNS server and client
  dnsmasq-base bind9-dnsutils
  # httpflow-tls tests: nginx's self-signed certificate; wget (GnuTLS) as a client the uprobes
  # do not cover; objcopy (binutils, with build-essential) makes a Go-like ELF
  openssl wget
  # ebpf-conntrack: ctnetlink framing and attribute parsing; its tests check against conntrack -L
  libmnl-dev libnetfilter-conntrack-dev conntrack
  # ebpf-bash tests: interactive shells driven with send-keys
  tmux
  # tests/helm: the offline chart renderer (text/template + sprig, YAML 1.1 as Helm reads it)
  golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev
  # what the binaries load, so a machine that builds can also run them
  "${runtime_packages[@]}"
)
[[ $mode == runtime ]] && packages=("${runtime_packages[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps.sh: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; refresh them when the install cannot find a package.
if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
