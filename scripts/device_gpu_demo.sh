#!/usr/bin/env bash
# device_gpu_demo.sh: the second command on a lent GPU machine, after scripts/device_gpu_check.sh
# on the same (still warm) machine, whose build-gpu it reuses; on a fresh machine it builds what it
# needs itself (bench/gpu_build.sh). Runs bench/gpu_demo.sh: `isonet demo --full --device cuda`,
# a train/restore/eval round trip with --device cuda, and the short GPU Table 1 run, within
# ISONET_DEMO_BUDGET (560 s) counted from the start of this script. Run from the repository root
# with the same carried paths as device_gpu_check.sh (.device-carry/deps.tar.xz, .device-carry/shared):
#   ISONET_COMMIT=<sha> bash scripts/device_gpu_demo.sh
# Results: the summary, gpu_demo_logs.tgz and the demo's preview/loss PNGs in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
ISONET_DEMO_START=${ISONET_DEMO_START:-$(date +%s)}
export ISONET_DEMO_START
# shellcheck source=scripts/device_env.sh
source scripts/device_env.sh
exec bash bench/gpu_demo.sh "$@"
