#!/usr/bin/env bash
# Installs every build and test dependency of kvplan from Debian packages.
#
# Idempotent: packages already present are skipped, so `make demo` and `make test`
# can call it on every run and pay for it only once. Needs root (or sudo) and
# Debian 12 (bookworm) package names.
#
# Usage: deploy/install-deps.sh [--check]
#   --check   only report which packages are missing; exit 1 if any are.
set -euo pipefail

PACKAGES=(
  # Toolchain.
  build-essential cmake ninja-build ccache pkg-config clang-format
  # RPC and storage stack.
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev librocksdb-dev prometheus-cpp-dev
  # LibTorch (CPU) for the worker. Its CMake config needs gflags resolved first
  # (see CMakeLists.txt); libgflags-dev provides it.
  libtorch-dev libgflags-dev
  # Debian's LibTorch calls whatever libblas.so.3 the alternatives system points at;
  # without OpenBLAS that is the reference BLAS, ~60x slower for the worker's matmuls.
  libopenblas0-pthread
  # Tests, benchmarks and small libraries.
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libpcre2-dev
  # promtool, to check the /metrics exposition in tests.
  prometheus
  # The openssl tool, which the TLS and mTLS tests make their certificates with.
  openssl
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [[ "${1:-}" == "--check" ]]; then
  if ((${#missing[@]})); then
    echo "missing packages: ${missing[*]}" >&2
    exit 1
  fi
  exit 0
fi

if ((${#missing[@]} == 0)); then
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  SUDO="sudo"
fi

echo "install-deps: installing ${#missing[@]} Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
