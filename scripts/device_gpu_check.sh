#!/usr/bin/env bash
# device_gpu_check.sh: the one command to run on a lent GPU machine (which has nvcc, CMake and
# PyTorch but no Debian packages), from the repository root. Prepare on the development machine:
#   bash scripts/make_device_deps.sh        # -> .device-carry/deps.tar.xz and .device-carry/shared
# then run this script on the device, carrying .device-carry/deps.tar.xz and .device-carry/shared,
# with ISONET_COMMIT set to the commit being checked. Results: bench/results/ and $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
tar xJf .device-carry/deps.tar.xz -C .device-carry
# Tests read the real data at ../shared/data/real, as in CI.
[[ -d ../shared ]] || cp -r .device-carry/shared ../shared
export ISONET_DEPS_PREFIX=$PWD/.device-carry/deps
export ISONET_BENCH_CPU=${ISONET_BENCH_CPU:-0}
export ISONET_SANITIZER_TIMEOUT=${ISONET_SANITIZER_TIMEOUT:-130}
bash bench/gpu_check.sh "$@"
