#!/usr/bin/env bash
# gpu_build.sh: the build step of a GPU machine, shared by bench/gpu_check.sh and bench/gpu_demo.sh
# (one place for the dependency environment, the CMake options and the sm_90 build into build-gpu).
#
# Sourced (from the repository root; the sourcing script's own options are left alone):
#   source bench/gpu_build.sh
#   gpu_env                          # exports for carried dependencies and PyTorch's cuDNN
#   gpu_commit                       # prints the commit to record
#   gpu_build LOG_DIR [TARGET...]    # configure + build $GPU_BUILD (all targets when none are named);
#                                    # logs LOG_DIR/configure.log and LOG_DIR/build.log; returns
#                                    # 0 built, 1 configure failed, 2 build failed (-k: every target
#                                    # that can be built still is)
# Run directly: bash bench/gpu_build.sh [TARGET...] does both, logs into build-gpu/build_logs.
#
# Environment:
#   ISONET_DEPS_PREFIX  folder with include/ and lib/ (lib/pkgconfig) holding the dependencies the
#                       GPU machine lacks (libtiff, FFTW, OpenBLAS, doctest, CLI11, nlohmann-json
#                       headers), made by scripts/make_device_deps.sh
#   ISONET_GPU_BUILD_DIR  build folder (default build-gpu; set as $GPU_BUILD once sourced)
#   ISONET_GPU_JOBS     build parallelism (default: nproc)
#   ISONET_CUDA_ARCH    CMAKE_CUDA_ARCHITECTURES (default 90: H100/H200)

GPU_BUILD=${ISONET_GPU_BUILD_DIR:-build-gpu}

# Exports the compiler, linker and loader paths for ISONET_DEPS_PREFIX and for a cuDNN that lives
# only inside PyTorch's install (bench_ops_cuda compares with cuDNN). Idempotent enough to call twice.
gpu_env() {
  if [[ -n "${ISONET_DEPS_PREFIX:-}" ]]; then
    local p=$ISONET_DEPS_PREFIX
    export CMAKE_PREFIX_PATH="$p${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    export CPATH="$p/include${CPATH:+:$CPATH}"
    export LIBRARY_PATH="$p/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export LD_LIBRARY_PATH="$p/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export PKG_CONFIG_PATH="$p/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    echo "== gpu_build: dependencies from $p"
  fi
  local torch_lib cudnn_lib d
  torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null || true)
  cudnn_lib=$(python3 -c 'import os, nvidia.cudnn as m; print(os.path.join(os.path.dirname(m.__file__), "lib"))' 2>/dev/null || true)
  for d in "$torch_lib" "$cudnn_lib"; do
    if [[ -n "$d" && -d "$d" ]] && ls "$d"/libcudnn.so* >/dev/null 2>&1; then
      # find_library needs the unversioned name; make one in the build tree if only libcudnn.so.9 exists.
      if [[ ! -e "$d/libcudnn.so" ]]; then
        mkdir -p $GPU_BUILD/cudnn_link && ln -sf "$(ls "$d"/libcudnn.so.* | head -1)" $GPU_BUILD/cudnn_link/libcudnn.so
        export LIBRARY_PATH="$PWD/$GPU_BUILD/cudnn_link${LIBRARY_PATH:+:$LIBRARY_PATH}"
        export CMAKE_LIBRARY_PATH="$PWD/$GPU_BUILD/cudnn_link${CMAKE_LIBRARY_PATH:+:$CMAKE_LIBRARY_PATH}"
      fi
      export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      export CMAKE_LIBRARY_PATH="$d${CMAKE_LIBRARY_PATH:+:$CMAKE_LIBRARY_PATH}"
      echo "== gpu_build: cuDNN from $d"
      break
    fi
  done
}

gpu_build() {
  local logs=$1
  shift
  mkdir -p "$logs"
  local args=(-S . -B "$GPU_BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${ISONET_CUDA_ARCH:-90}"
              -DISONET_BUILD_TESTS=ON -DISONET_BUILD_BENCH=ON)
  [[ -n "${ISONET_DEPS_PREFIX:-}" ]] && args+=(-DCMAKE_PREFIX_PATH="$ISONET_DEPS_PREFIX")
  cmake "${args[@]}" >"$logs/configure.log" 2>&1 || return 1
  local targets=()
  local t
  for t in "$@"; do targets+=(--target "$t"); done
  cmake --build "$GPU_BUILD" -j"${ISONET_GPU_JOBS:-$(nproc)}" "${targets[@]}" -- -k >"$logs/build.log" 2>&1 || return 2
  return 0
}

# The commit to record: ISONET_COMMIT (the device copy of the tree has no .git), else git's, marked
# when the tree has uncommitted changes; "unknown" without either.
gpu_commit() {
  local c
  if [[ -n "${ISONET_COMMIT:-}" ]]; then
    echo "$ISONET_COMMIT"
  elif c=$(git rev-parse --short HEAD 2>/dev/null); then
    git diff --quiet HEAD 2>/dev/null && echo "$c" || echo "$c (with uncommitted changes)"
  else
    echo unknown
  fi
}

# Run as a script: build (the named targets or everything) and say how it went.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -uo pipefail
  cd "$(dirname "$0")/.." || exit 1
  gpu_env
  gpu_build "$GPU_BUILD/build_logs" "$@"
  rc=$?
  case $rc in
    0) echo "== gpu_build: $GPU_BUILD built" ;;
    1) echo "== gpu_build: configure FAILED ($GPU_BUILD/build_logs/configure.log)" ;;
    *) echo "== gpu_build: build FAILED ($GPU_BUILD/build_logs/build.log)" ;;
  esac
  exit $rc
fi
