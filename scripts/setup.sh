#!/usr/bin/env bash
# setup.sh: installs what a fresh Debian 12 machine lacks (by package name), then configures and
# builds isonet into ./build. Idempotent: a second run only rebuilds what changed.
#   ISONET_SKIP_APT=1  skip the package step (no root, or already installed)
#   ISONET_CUDA=OFF    build without the CUDA backend even where nvcc exists
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libtiff-dev libfftw3-dev libopenblas-dev doctest-dev libcli11-dev
          nlohmann-json3-dev libpng-dev python3-numpy python3-scipy python3-skimage python3-tifffile python3-torch)
if [[ "${ISONET_SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo_cmd=""
    [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DISONET_CUDA="${ISONET_CUDA:-ON}" >/dev/null
cmake --build build -j"$jobs"
