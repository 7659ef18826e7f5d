#!/usr/bin/env bash
# gpu_check.sh: the one script to run on a GPU machine. It
#   1. configures and builds for sm_90 only into build-gpu (tests and benches, -j16),
#   2. runs the whole CTest suite (GPU tests included), saving the log,
#   3. runs compute-sanitizer memcheck and racecheck on every tests/test_cuda_* program,
#   4. runs every bench program that exists (bench_ops_cuda, and bench/run_model_bench.sh if present),
#   5. writes a Markdown summary (date, device, commit, ctest summary, sanitizer results, bench
#      tables) to $1 (default bench/results/gpu_check_<date>.md) and copies the logs into $OUT if set.
# Every step keeps going when an earlier one failed; failures are recorded in the summary.
# Budget: ~9 minutes on an H100 with 16 cores.
#
# Environment:
#   ISONET_DEPS_PREFIX  folder with include/ and lib/ (lib/pkgconfig) holding the dependencies the
#                       GPU machine lacks (libtiff, FFTW, OpenBLAS, doctest, CLI11, nlohmann-json headers)
#   ISONET_COMMIT       commit to record (the device copy of the tree may have no .git)
#   ISONET_GPU_JOBS     build parallelism (default 16)
#   ISONET_SANITIZER_TIMEOUT  seconds per compute-sanitizer run (default 240)
set -uo pipefail
cd "$(dirname "$0")/.."

stamp=$(date +%Y%m%d_%H%M%S)
summary=${1:-bench/results/gpu_check_${stamp}.md}
logs=build-gpu/gpu_check_logs
mkdir -p "$logs" "$(dirname "$summary")"
jobs=${ISONET_GPU_JOBS:-16}
status=()  # "step: result" lines for the summary

note() { echo "== gpu_check: $*"; }
record() { status+=("$1: $2"); note "$1: $2"; }

if [[ -n "${ISONET_DEPS_PREFIX:-}" ]]; then
  p=$ISONET_DEPS_PREFIX
  export CMAKE_PREFIX_PATH="$p${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export CPATH="$p/include${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$p/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$p/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PKG_CONFIG_PATH="$p/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  note "dependencies from $p"
fi
# cuDNN may live only inside PyTorch's install: let find_library and the loader see it.
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null || true)
for d in "$torch_lib" "$(python3 -c 'import os, nvidia.cudnn as m; print(os.path.join(os.path.dirname(m.__file__), "lib"))' 2>/dev/null || true)"; do
  if [[ -n "$d" && -d "$d" ]] && ls "$d"/libcudnn.so* >/dev/null 2>&1; then
    # find_library needs the unversioned name; make one in the build tree if only libcudnn.so.9 exists.
    if [[ ! -e "$d/libcudnn.so" ]]; then
      mkdir -p build-gpu/cudnn_link && ln -sf "$(ls "$d"/libcudnn.so.* | head -1)" build-gpu/cudnn_link/libcudnn.so
      export LIBRARY_PATH="$PWD/build-gpu/cudnn_link${LIBRARY_PATH:+:$LIBRARY_PATH}"
      export CMAKE_LIBRARY_PATH="$PWD/build-gpu/cudnn_link${CMAKE_LIBRARY_PATH:+:$CMAKE_LIBRARY_PATH}"
    fi
    export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export CMAKE_LIBRARY_PATH="$d${CMAKE_LIBRARY_PATH:+:$CMAKE_LIBRARY_PATH}"
    note "cuDNN from $d"
    break
  fi
done

# 1. configure + build
cmake_args=(-S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DISONET_BUILD_TESTS=ON
            -DISONET_BUILD_BENCH=ON)
[[ -n "${ISONET_DEPS_PREFIX:-}" ]] && cmake_args+=(-DCMAKE_PREFIX_PATH="$ISONET_DEPS_PREFIX")
if cmake "${cmake_args[@]}" >"$logs/configure.log" 2>&1; then
  record configure ok
else
  record configure "FAILED (see configure.log)"
fi
# -k: build every target that can be built even when one fails.
if cmake --build build-gpu -j"$jobs" -- -k >"$logs/build.log" 2>&1; then
  record build ok
else
  record build "FAILED (see build.log; targets that built still run)"
fi

# 2. ctest
ctest --test-dir build-gpu --output-on-failure --timeout 300 >"$logs/ctest.log" 2>&1
ctest_rc=$?
ctest_summary=$(grep -E "tests passed|tests failed|Total Test time" "$logs/ctest.log" | tr '\n' ' ')
record ctest "rc=$ctest_rc ${ctest_summary:-no summary (see ctest.log)}"
skipped=$(grep -c "Skipped" "$logs/ctest.log" || true)
[[ "$skipped" != 0 ]] && record ctest-skipped "$skipped test(s) reported Skipped (expected 0 on a GPU machine)"

# 3. compute-sanitizer on the GPU test programs
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
san_rows=()
for exe in build-gpu/tests/test_cuda_*; do
  [[ -x "$exe" && -f "$exe" ]] || continue
  name=$(basename "$exe")
  for tool in memcheck racecheck; do
    log="$logs/sanitizer_${tool}_${name}.log"
    if [[ ! -x "$sanitizer" ]]; then
      san_rows+=("| $name | $tool | not run (compute-sanitizer not found) |")
      continue
    fi
    # Tests run from the source tree (fixtures, ../shared data), as under CTest.
    # racecheck serializes every shared-memory access and runs ~100x slower: the whole-model
    # parity program (20 training steps) is checked on its inference case only; its kernels are
    # the same ones test_cuda_ops_parity checks in full.
    filter=()
    [[ $tool == racecheck && $name == test_cuda_model_parity ]] && filter=("-tc=*inference*")
    timeout "${ISONET_SANITIZER_TIMEOUT:-240}" "$sanitizer" --tool "$tool" --error-exitcode 99 "$exe" "${filter[@]}" >"$log" 2>&1
    rc=$?
    errs=$(grep -oE "(ERROR SUMMARY: [0-9]+ error|RACECHECK SUMMARY: [0-9]+ hazard)" "$log" | tail -1)
    case $rc in
      0) res="pass ${errs}" ;;
      99) res="FAIL: sanitizer errors (${errs})" ;;
      124) res="FAIL: timed out after ${ISONET_SANITIZER_TIMEOUT:-240} s" ;;
      *) res="FAIL: rc=$rc (${errs:-see log})" ;;
    esac
    san_rows+=("| $name ${filter[*]} | $tool | $res |")
    note "$tool $name: $res"
  done
done

# 4. benchmarks
mkdir -p bench/results
bench_md=()
if [[ -x build-gpu/bench/bench_ops_cuda ]]; then
  out_md="$logs/bench_ops_cuda.md"
  if timeout 240 build-gpu/bench/bench_ops_cuda --out "$out_md" >"$logs/bench_ops_cuda.log" 2>&1; then
    record bench_ops_cuda ok
  else
    record bench_ops_cuda "FAILED rc=$? (see bench_ops_cuda.log)"
  fi
  [[ -f "$out_md" ]] && bench_md+=("$out_md")
else
  record bench_ops_cuda "not built"
fi
if [[ -x bench/run_model_bench.sh ]]; then
  out_md="$logs/model_bench.md"
  if timeout 180 bench/run_model_bench.sh "$out_md" >"$logs/model_bench.log" 2>&1; then
    record model_bench ok
  else
    record model_bench "FAILED rc=$? (see model_bench.log)"
  fi
  [[ -f "$out_md" ]] && bench_md+=("$out_md")
fi

# 5. summary
{
  echo "# GPU check $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo unknown)"
  echo "- commit: ${ISONET_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "- CUDA: $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo unknown)"
  echo
  echo "## Steps"
  for s in "${status[@]}"; do echo "- $s"; done
  echo
  echo "## CTest"
  echo '```'
  grep -E "Test +#|tests passed|tests failed|Skipped|Failed|\*\*\*" "$logs/ctest.log" 2>/dev/null | tail -80
  echo '```'
  echo
  echo "## compute-sanitizer"
  echo "| program | tool | result |"
  echo "|---|---|---|"
  for r in "${san_rows[@]}"; do echo "$r"; done
  echo
  echo "## Benchmarks"
  for f in "${bench_md[@]}"; do
    echo
    cat "$f"
  done
} >"$summary"
note "summary written to $summary"

if [[ -n "${OUT:-}" ]]; then
  # The device tool returns at most 8 files: the summary and one archive of every log.
  cp "$summary" "$OUT/" 2>/dev/null
  tar -czf "$OUT/gpu_check_logs.tgz" -C "$(dirname "$logs")" "$(basename "$logs")" 2>/dev/null
  note "summary and logs archive copied to $OUT"
fi
exit 0
