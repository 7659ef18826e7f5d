#!/usr/bin/env bash
# device_gpu_check.sh: the first command to run on a lent GPU machine (see bench/README.md,
# "GPU machine"): build, every test, the sanitizers and both benchmarks (bench/gpu_check.sh),
# within ISONET_CHECK_BUDGET (480 s) counted from the start of this script. Prepare here:
#   bash scripts/make_device_deps.sh        # -> .device-carry/deps.tar.xz and .device-carry/shared
# then run on the device, from the repository root, carrying those two paths:
#   ISONET_COMMIT=<sha> bash scripts/device_gpu_check.sh
# Results: the summary and gpu_check_logs.tgz in $OUT (and bench/results/ on the device).
set -euo pipefail
cd "$(dirname "$0")/.."
ISONET_CHECK_START=${ISONET_CHECK_START:-$(date +%s)}
export ISONET_CHECK_START
# shellcheck source=scripts/device_env.sh
source scripts/device_env.sh
# The CPU half of the model benchmark is measured on the development machine; here the GPU's time is for CUDA.
export ISONET_BENCH_CPU=${ISONET_BENCH_CPU:-0}
exec bash bench/gpu_check.sh "$@"
