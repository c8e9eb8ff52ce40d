#!/usr/bin/env bash
# Installs every Debian package Hearth needs to build, test and demo.
# Idempotent: packages already installed are skipped, and `apt-get update`
# runs only when something is missing. Run as root (or with sudo available).
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake ninja-build ccache pkg-config git
  # engine
  libonnx-dev libprotobuf-dev protobuf-compiler libdnnl-dev
  # front ends: HTTP (Beast/Asio) and gRPC
  libboost-dev libboost-system-dev libgrpc++-dev protobuf-compiler-grpc zlib1g-dev
  # CLI, JSON, storage, crypto, confinement of trial loads
  libcli11-dev nlohmann-json3-dev rapidjson-dev libsqlite3-dev libssl-dev libyaml-cpp-dev libseccomp-dev
  # tests (clang and its runtime for the libFuzzer targets)
  libgtest-dev libgmock-dev googletest clang libclang-rt-14-dev libomp-dev sqlite3 openssl
  # reference models and data
  python3 python3-numpy python3-onnx python3-torch python3-torchvision python3-grpcio python3-protobuf
  # serving load benchmark (bench/serve)
  wrk
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
