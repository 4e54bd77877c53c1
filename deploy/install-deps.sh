#!/usr/bin/env bash
# Installs what PPE needs from Debian 12's packages (the only registry used).
#   deploy/install-deps.sh          build + run (quick start)
#   deploy/install-deps.sh --test   also what the test suite needs
#   deploy/install-deps.sh --cluster  also etcd (deploy/quickstart.sh --cluster)
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git python3
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libabsl-dev
  libvirt-dev libvirt0 libmaxminddb-dev libssl-dev libsqlite3-dev libspdlog-dev libfmt-dev rapidjson-dev
  prometheus-cpp-dev libeigen3-dev libnlopt-dev golang-etcd-server-dev
  pdns-server pdns-backend-remote bind9-dnsutils procps
  gnuplot-nox
)
if [[ "${1:-}" == "--cluster" ]]; then
  packages+=(etcd-server etcd-client)
fi
if [[ "${1:-}" == "--test" ]]; then
  packages+=(catch2 libbenchmark-dev knot-dnsutils dnsperf r-cran-forecast python3-statsmodels
             clang libclang-rt-14-dev clang-format libmaxmind-db-writer-perl openssl iproute2
             xz-utils bzip2 pdns-backend-bind pdns-backend-sqlite3 etcd-server
             pdns-recursor unbound zonemaster-cli)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages (run as root to install): ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package may start pdns on port 53 where an init system exists; PPE
# runs its own pdns_server with its own config and never uses that one.
