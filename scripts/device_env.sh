#!/usr/bin/env bash
# device_env.sh: sourced (from the repository root) by scripts/device_gpu_check.sh and
# scripts/device_gpu_demo.sh on a lent GPU machine, which has nvcc, CMake and PyTorch but none of
# the Debian packages. Unpacks the dependencies carried as .device-carry/deps.tar.xz (made here by
# scripts/make_device_deps.sh) unless a warm machine already has them unpacked from the same
# archive, puts the carried real test data where the tests look for it (../shared/data/real), and
# exports ISONET_DEPS_PREFIX for bench/gpu_build.sh.
if [[ ! -f .device-carry/deps.tar.xz ]]; then
  echo "device_env: .device-carry/deps.tar.xz is missing: run scripts/make_device_deps.sh here and carry it" >&2
  return 1 2>/dev/null || exit 1
fi
# The archive's checksum marks the unpacked folder, so a new archive replaces an old unpacking.
sum=$(cksum <.device-carry/deps.tar.xz)
if [[ ! -f .device-carry/deps/.unpacked || "$(cat .device-carry/deps/.unpacked)" != "$sum" ]]; then
  rm -rf .device-carry/deps
  tar xJf .device-carry/deps.tar.xz -C .device-carry
  echo "$sum" >.device-carry/deps/.unpacked
fi
# Tests read the real data at ../shared/data/real, as in CI.
if [[ ! -d ../shared/data/real && -d .device-carry/shared/data/real ]]; then
  mkdir -p ../shared/data && cp -r .device-carry/shared/data/real ../shared/data/
fi
export ISONET_DEPS_PREFIX=$PWD/.device-carry/deps
