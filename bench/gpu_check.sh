#!/usr/bin/env bash
# gpu_check.sh [SUMMARY_MD]: the one script to run on a GPU machine. In order, each step bounded
# by what is left of one time budget (ISONET_CHECK_BUDGET, default 480 s, so that a run fits a
# 10-minute device call with room for unpacking and returning the files):
#   1. configure + build build-gpu for sm_90 (bench/gpu_build.sh: the build step that
#      bench/gpu_demo.sh shares),
#   2. the whole CTest suite (GPU tests included),
#   3. compute-sanitizer memcheck on every tests/test_cuda_* program, whole,
#   4. compute-sanitizer racecheck on a chosen subset of each program's doctest cases (below),
#   5. bench_ops_cuda and bench/run_model_bench.sh (CUDA vs PyTorch),
#   6. the heavy racecheck cases, with whatever time is left.
# It writes a Markdown summary (date, device, commit, the seconds each step took, ctest results,
# one row per sanitizer run naming the test cases it ran, the cases not raced and why, per-case
# durations under the sanitizer, bench tables) to SUMMARY_MD (default
# bench/results/gpu_check_<date>.md), REWRITTEN AFTER EVERY STEP and copied with a logs archive
# into $OUT when set, so a run cut off by the device tool still returns what it did.
# Every step keeps going when an earlier one failed; failures are recorded in the summary.
#
# racecheck: it checks shared-memory accesses only and runs kernels that use shared memory about
# 100x slower; whole programs do not fit (run 2: the ops and model parity programs timed out at
# 60 s). Our kernels with shared memory are conv2d's tiled forward/backward-data kernel (K = 1, 3,
# 5, 7, 9, flipped or not), the TF32 tensor-core kernel (conv2d_tf32.cu), the tiled
# backward-weights kernel and the dW/dbias reductions, and the
# PSNR loss reductions (grep __shared__ kernels/*.cu); the elementwise, pooling, upsampling,
# concat, dropout and Adam kernels use none, so racecheck has nothing to check in their cases.
# Chosen cases (core, RACE_CORE below) launch every shared-memory kernel on small shapes:
#   test_cuda_model_parity: inference (IsoNet-1: K 9/5/1, IsoNet-2: K 7/1, forward), IsoNet-1
#     training (backward data + weights at K 9/5/1) and IsoNet-2 training from device tensors
#     (backward data + weights at K 7/1, dbias, split-K, PSNR loss), all at 12-28 pixels;
#   test_cuda_ops_parity: backward weights at K = 3 without dbias, and the PSNR loss cases;
#   (the tiled forward/backward-data kernel at K = 3, and at K = 9 flipped, runs only in the
#   conv shape grid, a heavy case below)
#   test_cuda_deconvolve, test_cuda_fft_convolve: whole (cuFFT and elementwise kernels only;
#     both passed racecheck whole within 60 s in run 2);
#   test_cuda_conv_fft: the dispatch case (FFT forward through cuFFT plus its own scatter /
#     weight-wrap / per-bin product / crop kernels, which use no shared memory, and the direct
#     K = 5 kernel); its shape grid and IsoNet-2 batch-16 cases are heavy (cuFFT's kernels use
#     shared memory), its error and two-thread cases add no kernel work;
#   test_cuda_conv_tf32: the determinism case (the TF32 tensor-core kernel at K = 5 with split-K,
#     which stages its tiles and tap table in shared memory, and the FFT path); its shape grid
#     and IsoNet-2 batch-16 cases are heavy;
#   test_cuda_app: none (it drives the same kernels through the app, on larger volumes);
#   any other test_cuda_* program: every case, each in its own run.
# Heavy cases (RACE_EXTRA: the conv shape grid up to IsoNet-2's 16x48->16 at 128x128, the
# bitwise-determinism case, 20 IsoNet-2 training steps, the FFT conv grid and batch-16 layers) run last and only with time left; the
# summary says which ran, which passed, and which stopped at the limit (a stopped run still lists
# the hazards it reported before the stop). A case runs in its own compute-sanitizer process
# (doctest -tc=<its name>) so one slow case cannot hide the others' results.
#
# Environment:
#   ISONET_DEPS_PREFIX, ISONET_GPU_BUILD_DIR, ISONET_CUDA_ARCH: see bench/gpu_build.sh
#   ISONET_COMMIT             commit to record (the device copy of the tree may have no .git)
#   ISONET_GPU_JOBS           build parallelism (default: nproc)
#   ISONET_CHECK_START        epoch seconds the budget counts from (default: now; the device
#                             wrapper sets it before unpacking the dependencies)
#   ISONET_CHECK_BUDGET       seconds for the whole check (default 480)
#   ISONET_SANITIZER_TIMEOUT  seconds per compute-sanitizer run (default 90): a run is one
#                             program under memcheck, or one test case (or one whole program,
#                             where the list says so) under racecheck; a run that reaches it is
#                             stopped and recorded as "stopped at the limit"
#   ISONET_SANITIZER_BUDGET   seconds for all compute-sanitizer runs together (default 200); runs
#                             that no longer fit are listed as not run
#   ISONET_BENCH_RESERVE      seconds kept for the benchmarks while the sanitizers run (default 150)
#   ISONET_CTEST_JOBS         ctest parallelism (default 4)
#   ISONET_RUN_BENCH          0 skips both benchmarks (e.g. a follow-up call for the heavy racecheck cases)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/gpu_build.sh
source bench/gpu_build.sh

start=${ISONET_CHECK_START:-$(date +%s)}
budget=${ISONET_CHECK_BUDGET:-480}
deadline=$((start + budget))
stamp=$(date +%Y%m%d_%H%M%S)
summary=${1:-bench/results/gpu_check_${stamp}.md}
logs=$GPU_BUILD/gpu_check_logs
rm -rf "$logs"
mkdir -p "$logs" "$(dirname "$summary")"
per_run=${ISONET_SANITIZER_TIMEOUT:-90}
san_budget=${ISONET_SANITIZER_BUDGET:-200}
bench_reserve=${ISONET_BENCH_RESERVE:-150}
[[ "${ISONET_RUN_BENCH:-1}" == 0 ]] && bench_reserve=0

# Racecheck selection: per program, doctest test-case name patterns (doctest wildcards * and ?),
# one per line, each matching case raced in its own run; ALL = the whole program in one run;
# NONE = not raced. Programs not listed: every case, each in its own run.
declare -A RACE_CORE=(
  [test_cuda_model_parity]=$'*inference on odd batches*\n*IsoNet-1, 5 training steps*\n*training from device tensors*'
  [test_cuda_ops_parity]=$'*backward weights without dbias*\n*PSNR loss forward*'
  [test_cuda_deconvolve]=ALL
  [test_cuda_fft_convolve]=ALL
  [test_cuda_app]=NONE
  [test_cuda_conv_fft]=$'*the dispatch runs the FFT path*'
  [test_cuda_conv_tf32]=$'*deterministic, differs from fp32*'
)
declare -A RACE_EXTRA=(
  [test_cuda_ops_parity]=$'*bitwise reproducible*\n*over the shape grid*'
  [test_cuda_model_parity]=$'*IsoNet-2, 20 training steps*'
  [test_cuda_conv_fft]=$'*over the shape grid*\n*7x7 layers at batch 16*'
  [test_cuda_conv_tf32]=$'*over the shape grid*\n*layers at batch 16*'
)
# Why a program's cases outside both lists are left out (for the summary).
declare -A RACE_LEFT_OUT=(
  [test_cuda_ops_parity]="launches no kernel that uses shared memory"
  [test_cuda_conv_fft]="the dispatch case runs the same kernels; this one adds error paths or host threads"
)

status=()      # "step: result (seconds)" lines
san_rows=()    # sanitizer table rows
not_raced=()   # "program: case (why)" lines
durations=()   # "program tool: seconds: case" lines from doctest -d
bench_md=()
san_used=0
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)

STEP_TAG=gpu_check
# shellcheck source=bench/gpu_steps.sh
source bench/gpu_steps.sh  # now, left, limit, note, record, version_lines

write_summary() {
  {
    echo "# GPU check $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo unknown)"
    echo "- commit: $(gpu_commit)"
    echo "- CUDA: $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo unknown); compute-sanitizer: $("$sanitizer" --version 2>/dev/null | grep -o 'Version [0-9.]*' | head -1 || echo none)"
    echo "- $(nproc) CPU cores; time budget ${budget} s (ISONET_CHECK_BUDGET), $(($(now) - start)) s used when this was written"
    version_lines "$GPU_BUILD"
    echo
    echo "## Steps"
    local s
    for s in "${status[@]}"; do echo "- $s"; done
    if [[ -f "$logs/ctest.log" ]]; then
      echo
      echo "## CTest"
      echo '```'
      grep -E "Test +#|tests passed|tests failed|Skipped|Failed|\*\*\*" "$logs/ctest.log" | tail -80
      echo '```'
    fi
    if ((${#san_rows[@]})); then
      echo
      echo "## compute-sanitizer"
      echo
      echo "memcheck: every GPU test program, whole. racecheck: the test cases named (doctest -tc), each in its"
      echo "own run; see the header of bench/gpu_check.sh for why these. Limit per run ${per_run} s"
      echo "(ISONET_SANITIZER_TIMEOUT), ${san_budget} s for all runs (ISONET_SANITIZER_BUDGET), ${san_used} s used."
      echo
      echo "| program | test cases | tool | result | s |"
      echo "|---|---|---|---|---|"
      for s in "${san_rows[@]}"; do echo "$s"; done
      if ((${#not_raced[@]})); then
        echo
        echo "Not raced:"
        for s in "${not_raced[@]}"; do echo "- $s"; done
      fi
      if ((${#durations[@]})); then
        echo
        echo "<details><summary>Durations of the test cases under the sanitizer (doctest -d)</summary>"
        echo
        echo '```'
        for s in "${durations[@]}"; do echo "$s"; done
        echo '```'
        echo "</details>"
      fi
    fi
    if ((${#bench_md[@]})); then
      echo
      echo "## Benchmarks"
      local f
      for f in "${bench_md[@]}"; do
        echo
        cat "$f"
      done
    fi
  } >"$summary"
  if [[ -n "${OUT:-}" ]]; then
    # The device tool returns few files: the summary and one archive of every log.
    cp "$summary" "$OUT/" 2>/dev/null
    tar -czf "$OUT/gpu_check_logs.tgz" -C "$(dirname "$logs")" "$(basename "$logs")" 2>/dev/null
  fi
}

gpu_env

# 1. configure + build, at most what is left but a minute (timeout stops the whole make tree;
# the check then goes on with the targets that exist).
t0=$(now)
lim=$(limit 100000 60)
timeout -k 10 "$lim" bash -c 'source bench/gpu_build.sh && gpu_build "$1"' gpu_build "$logs"
case $? in
  0) record build "ok ($(($(now) - t0)) s)" ;;
  1) record build "configure FAILED (see configure.log; $(($(now) - t0)) s)" ;;
  124 | 137) record build "STOPPED at the ${lim} s limit; targets that built still run" ;;
  *) record build "FAILED (see build.log; targets that built still run; $(($(now) - t0)) s)" ;;
esac
write_summary

# 2. ctest
t0=$(now)
lim=$(limit 240 30)
if ((lim >= 30)); then
  timeout -k 10 "$lim" ctest --test-dir "$GPU_BUILD" --output-on-failure --timeout 150 -j"${ISONET_CTEST_JOBS:-4}" \
    >"$logs/ctest.log" 2>&1
  ctest_rc=$?
  ctest_summary=$(grep -E "tests passed|tests failed|Total Test time" "$logs/ctest.log" | tr '\n' ' ')
  ((ctest_rc == 124)) && ctest_summary="STOPPED at the ${lim} s limit; $ctest_summary"
  record ctest "rc=$ctest_rc ${ctest_summary:-no summary (see ctest.log)} ($(($(now) - t0)) s)"
  # ctest marks a skipped test "***Skipped" on its result line (and lists it again at the end).
  skipped=$(grep -c '\*\*\*Skipped' "$logs/ctest.log" || true)
  [[ "$skipped" != 0 ]] && record ctest-skipped "$skipped test(s) reported Skipped (expected 0 on a GPU machine)"
else
  record ctest "not run (time budget spent)"
fi
write_summary

# 3.-6. compute-sanitizer
# Programs in the order of what matters most when time runs short (the open racecheck of the ops
# parity program first), then any others in name order.
programs=()
for name in test_cuda_ops_parity test_cuda_model_parity test_cuda_conv_fft test_cuda_conv_tf32 test_cuda_deconvolve \
            test_cuda_fft_convolve test_cuda_app; do
  [[ -x "$GPU_BUILD/tests/$name" ]] && programs+=("$GPU_BUILD/tests/$name")
done
for exe in "$GPU_BUILD"/tests/test_cuda_*; do
  [[ -x "$exe" && -f "$exe" && " ${programs[*]} " != *" $exe "* ]] && programs+=("$exe")
done

# doctest case names of a program, one per line.
list_cases() {
  "$1" --list-test-cases 2>/dev/null | sed -n '/^====/,/^====/p' | grep -v '^====' | grep -v '^\[doctest\]'
}

# A doctest filter that matches exactly NAME: doctest splits filters at commas, so each comma
# becomes the one-character wildcard.
exact_filter() { echo "${1//,/?}"; }

run_counter=0
# sanitize TOOL EXE LABEL RESERVE [DOCTEST ARGS...]: one compute-sanitizer run, recorded as a row.
sanitize() {
  local tool=$1 exe=$2 label=$3 reserve=$4
  shift 4
  local name
  name=$(basename "$exe")
  if [[ ! -x "$sanitizer" ]]; then
    san_rows+=("| $name | $label | $tool | not run (compute-sanitizer not found) | - |")
    return
  fi
  local avail=$((san_budget - san_used)) lim
  lim=$(limit "$per_run" "$reserve")
  ((avail < lim)) && lim=$avail
  if ((lim < 10)); then
    san_rows+=("| $name | $label | $tool | not run (time budget spent) | - |")
    return
  fi
  run_counter=$((run_counter + 1))
  local log="$logs/sanitizer_${tool}_${name}_${run_counter}.log"
  local t0
  t0=$(now)
  # Tests run from the source tree (fixtures, ../shared data), as under CTest. -d: doctest prints
  # each case's duration (kept in the summary to size the next run's selection).
  ISONET_SOURCE_DIR=$PWD timeout -k 10 "$lim" "$sanitizer" --tool "$tool" --error-exitcode 99 "$exe" -d "$@" \
    >"$log" 2>&1
  local rc=$?
  local dt=$(($(now) - t0))
  san_used=$((san_used + dt))
  local errs reports cases res
  errs=$(grep -oE "(ERROR SUMMARY: [0-9]+ errors?|RACECHECK SUMMARY: [0-9]+ hazards?[^=]*)" "$log" | tail -1)
  # Reports printed so far (first lines of memcheck errors / racecheck hazards), for stopped runs.
  reports=$(grep -E '^========= [A-Z]' "$log" | grep -vcE 'SUMMARY|COMPUTE-SANITIZER' || true)
  cases=$(grep -oE '^\[doctest\] test cases: +[0-9]+ \| +[0-9]+ passed \| +[0-9]+ failed' "$log" | tail -1 |
          sed -E 's/\[doctest\] test cases: +([0-9]+) \| +([0-9]+) passed \| +([0-9]+) failed/\2 of \1 cases passed/')
  case $rc in
    0) res="pass: ${errs:-no summary line}; ${cases:-?}" ;;
    99) res="**FAIL**: sanitizer errors (${errs:-$reports reports}); ${cases:-?}" ;;
    124 | 137) res="stopped at the ${lim} s limit (incomplete; $reports sanitizer reports before the stop)" ;;
    *) res="**FAIL**: rc=$rc (${errs:-see log}; ${cases:-no doctest summary})" ;;
  esac
  [[ $rc == 0 && -z "$cases" ]] && res="**FAIL**: no doctest summary (see log)"
  [[ $rc == 0 && "$cases" == "0 of 0 cases passed" ]] && res="**FAIL**: no test case matched"
  san_rows+=("| $name | $label | $tool | $res | $dt |")
  note "$tool $name [$label]: $res ($dt s)"
  local d
  while IFS= read -r d; do durations+=("$name $tool: $d"); done < <(grep -E '^[0-9]+\.[0-9]+ s: ' "$log")
  write_summary
}

# race_list EXE SELECTION: racecheck runs for the cases SELECTION picks ("" = every case).
race_list() {
  local exe=$1 selection=$2 reserve=$3
  if [[ "$selection" == NONE ]]; then
    not_raced+=("$(basename "$exe"): every case (the app drives the kernels the model parity cases race, on larger volumes)")
    return
  fi
  if [[ "$selection" == ALL ]]; then
    sanitize racecheck "$exe" "all cases (one run)" "$reserve"
    return
  fi
  local pattern c
  local -a cases
  mapfile -t cases < <(list_cases "$exe")
  if [[ -z "$selection" ]]; then
    for c in "${cases[@]}"; do sanitize racecheck "$exe" "$c" "$reserve" -tc="$(exact_filter "$c")"; done
    return
  fi
  while IFS= read -r pattern; do
    local matched=0
    for c in "${cases[@]}"; do
      # shellcheck disable=SC2053  # the pattern is a glob on purpose (doctest's * and ?)
      if [[ "$c" == $pattern ]]; then
        matched=1
        sanitize racecheck "$exe" "$c" "$reserve" -tc="$(exact_filter "$c")"
      fi
    done
    ((matched)) || san_rows+=("| $(basename "$exe") | $pattern | racecheck | **FAIL**: no test case matches the selection (update RACE_CORE/RACE_EXTRA in bench/gpu_check.sh) | - |")
  done <<<"$selection"
}

# The cases of a program that neither list selects, for the summary.
record_not_raced() {
  local exe=$1 name c pattern hit
  name=$(basename "$exe")
  local sel="${RACE_CORE[$name]-}"$'\n'"${RACE_EXTRA[$name]-}"
  [[ -z "${RACE_CORE[$name]+x}" || "${RACE_CORE[$name]}" == ALL || "${RACE_CORE[$name]}" == NONE ]] && return
  while IFS= read -r c; do
    hit=0
    while IFS= read -r pattern; do
      # shellcheck disable=SC2053
      [[ -n "$pattern" && "$c" == $pattern ]] && hit=1
    done <<<"$sel"
    ((hit)) || not_raced+=("$name: $c (not selected: ${RACE_LEFT_OUT[$name]:-see the header of bench/gpu_check.sh})")
  done < <(list_cases "$exe")
}

t0=$(now)
for exe in "${programs[@]}"; do
  sanitize memcheck "$exe" "all cases" $((bench_reserve + 30))
done
record memcheck "$(printf '%s\n' "${san_rows[@]}" | grep -c '| memcheck | pass') of ${#programs[@]} programs clean ($(($(now) - t0)) s)"

t0=$(now)
rows_before=${#san_rows[@]}
for exe in "${programs[@]}"; do
  name=$(basename "$exe")
  [[ -n "${RACE_CORE[$name]+x}" ]] && race_list "$exe" "${RACE_CORE[$name]}" "$bench_reserve"
  record_not_raced "$exe"
done
for exe in "${programs[@]}"; do
  name=$(basename "$exe")
  [[ -z "${RACE_CORE[$name]+x}" ]] && race_list "$exe" "" "$bench_reserve"
done
core_rows=("${san_rows[@]:rows_before}")
record racecheck "$(printf '%s\n' "${core_rows[@]}" | grep -c '| racecheck | pass') of ${#core_rows[@]} chosen runs clean ($(($(now) - t0)) s)"
write_summary

# 5. benchmarks
t0=$(now)
if [[ "${ISONET_RUN_BENCH:-1}" == 0 ]]; then
  record benchmarks "not run (ISONET_RUN_BENCH=0)"
elif [[ -x "$GPU_BUILD"/bench/bench_ops_cuda ]]; then
  out_md="$logs/bench_ops_cuda.md"
  lim=$(limit 150 90)
  if ((lim < 20)); then
    record bench_ops_cuda "not run (time budget spent)"
  elif timeout -k 10 "$lim" "$GPU_BUILD"/bench/bench_ops_cuda --out "$out_md" >"$logs/bench_ops_cuda.log" 2>&1; then
    if grep -q "no CUDA device" "$logs/bench_ops_cuda.log"; then
      record bench_ops_cuda "not run (no CUDA device)"
    else
      record bench_ops_cuda "ok ($(($(now) - t0)) s)"
    fi
  else
    record bench_ops_cuda "FAILED rc=$? (see bench_ops_cuda.log; $(($(now) - t0)) s, limit $lim s)"
  fi
  [[ -f "$out_md" ]] && bench_md+=("$out_md")
else
  record bench_ops_cuda "not built"
fi
write_summary
t0=$(now)
if [[ "${ISONET_RUN_BENCH:-1}" != 0 && -x bench/run_model_bench.sh ]]; then
  out_md="$logs/model_bench.md"
  lim=$(limit 180 15)
  if ((lim < 30)); then
    record model_bench "not run (time budget spent)"
  else
    # The script shares its own budget among its runs and skips those that no longer fit.
    if ISONET_BUILD_DIR=$GPU_BUILD ISONET_BENCH_BUDGET_S=$((lim - 10)) timeout -k 10 "$lim" bench/run_model_bench.sh "$out_md" \
      >"$logs/model_bench.log" 2>&1; then
      rows=$(grep -c '^| cuda' "$out_md" 2>/dev/null || true)
      record model_bench "ok, ${rows:-0} CUDA row(s) ($(($(now) - t0)) s)"
    else
      record model_bench "FAILED rc=$? (see model_bench.log; $(($(now) - t0)) s, limit $lim s)"
    fi
  fi
  [[ -f "$out_md" ]] && bench_md+=("$out_md")
fi
write_summary

# 6. heavy racecheck cases with the time that is left
t0=$(now)
rows_before=${#san_rows[@]}
for exe in "${programs[@]}"; do
  name=$(basename "$exe")
  [[ -n "${RACE_EXTRA[$name]+x}" ]] && race_list "$exe" "${RACE_EXTRA[$name]}" 15
done
extra_rows=("${san_rows[@]:rows_before}")
record racecheck-heavy "$(printf '%s\n' "${extra_rows[@]}" | grep -c '| racecheck | pass') of ${#extra_rows[@]} heavy cases clean ($(($(now) - t0)) s)"

record total "$(($(now) - start)) s of the ${budget} s budget"
write_summary
note "summary written to $summary${OUT:+ and copied with the logs archive to $OUT}"
exit 0
