#!/usr/bin/env bash
# gpu_demo.sh [SUMMARY_MD]: the `isonet` program end to end on a GPU, in one call of at most
# ISONET_DEMO_BUDGET seconds (default 560, so a 600 s device call returns with its files):
#   1. build: bench/gpu_build.sh's build step for the targets used here (isonet, bench_table1);
#      a no-op when build-gpu is up to date (after bench/gpu_check.sh on the same machine),
#      a real build when build-gpu is missing (a fresh machine),
#   2. `isonet demo --full --device cuda` (512^3 nuclei, 4000 IsoNet-2 steps of 32 patches of
#      64x64, restore, Richardson-Lucy, PSNR/SSIM table), bounded by `timeout`; when stopped, the
#      summary says which phase it reached and the last training step,
#   3. a CLI round trip on a 192^3 simulated volume: `isonet train --device cuda`, `isonet restore`
#      with --device cuda, with --device cpu and with --device cuda and a --max-memory small enough
#      to force tiles, each scored with `isonet eval` against the ground truth, and the CUDA result
#      against the CPU one and the tiled against the untiled one (without the affine fit); then the
#      same training and restore with --math tf32 (TF32 tensor cores), scored the same way,
#   4. with the time left, the short GPU Table 1 run of bench/REPRODUCE.md (one 256^3 nuclei
#      volume, 20 epochs, all methods).
# It writes a Markdown summary (date, device, commit, the demo's PSNR/SSIM table, the time of each
# phase, training steps/s, peak GPU memory, the round trip's scores, the Table 1 result) to
# SUMMARY_MD (default bench/results/<date>_gpu_demo.md), rewritten after every step and copied
# with the logs archive, the demo's preview and loss PNGs into $OUT when set.
# Volumes stay in build-gpu/gpu_demo (512^3 floats are 512 MB each).
#
# Environment:
#   ISONET_DEPS_PREFIX, ISONET_GPU_BUILD_DIR, ISONET_CUDA_ARCH, ISONET_GPU_JOBS: bench/gpu_build.sh
#   ISONET_COMMIT        commit to record (the device copy of the tree may have no .git)
#   ISONET_DEMO_START    epoch seconds the budget counts from (default: now)
#   ISONET_DEMO_BUDGET   seconds for everything (default 560)
#   ISONET_DEMO_TIMEOUT  seconds for `isonet demo --full` at most (default: the budget less 90 s
#                        kept for the round trip)
#   ISONET_DEMO_ARGS     extra arguments for `isonet demo` (e.g. "--steps 2000")
#   ISONET_DEMO_DEVICE   device of every run (default cuda; cpu only to try the script elsewhere)
#   ISONET_ROUNDTRIP_SIZE, ISONET_ROUNDTRIP_STEPS  round trip volume size and training steps
#                        (default 192, 1000)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/gpu_build.sh
source bench/gpu_build.sh

start=${ISONET_DEMO_START:-$(date +%s)}
budget=${ISONET_DEMO_BUDGET:-560}
deadline=$((start + budget))
summary=${1:-bench/results/$(date +%Y-%m-%d)_gpu_demo.md}
work=$GPU_BUILD/gpu_demo
logs=$work/logs
rm -rf "$work"
mkdir -p "$logs" "$(dirname "$summary")"
isonet=$GPU_BUILD/apps/isonet
dev=${ISONET_DEMO_DEVICE:-cuda}
rt_size=${ISONET_ROUNDTRIP_SIZE:-192}
rt_steps=${ISONET_ROUNDTRIP_STEPS:-1000}

status=()        # "step: result" lines
demo_md=()       # demo section lines
trip_md=()       # round trip section lines
table1_md=""     # the Table 1 Markdown file, when written

STEP_TAG=gpu_demo
# shellcheck source=bench/gpu_steps.sh
source bench/gpu_steps.sh  # now, left, limit, note, record, version_lines
# Prefixes every line with the epoch second it arrived (phase timings of a stopped run).
stamp_lines() {
  local line
  while IFS= read -r line; do printf '%(%s)T %s\n' -1 "$line"; done
}

write_summary() {
  {
    echo "# GPU demo $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo unknown)"
    echo "- commit: $(gpu_commit)"
    echo "- CUDA: $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo unknown); $(nproc) CPU cores"
    version_lines "$GPU_BUILD"
    [[ $dev == cuda ]] || echo "- **device override: ISONET_DEMO_DEVICE=$dev (not a GPU run)**"
    echo "- time budget ${budget} s (ISONET_DEMO_BUDGET), $(($(now) - start)) s used when this was written"
    echo "- commands: bench/gpu_demo.sh (scripts/device_gpu_demo.sh on a lent machine); logs in gpu_demo_logs.tgz"
    echo
    echo "## Steps"
    local s
    for s in "${status[@]}"; do echo "- $s"; done
    if ((${#demo_md[@]})); then
      echo
      echo "## isonet demo --full --device $dev"
      echo
      for s in "${demo_md[@]}"; do echo "$s"; done
    fi
    if ((${#trip_md[@]})); then
      echo
      echo "## Round trip: isonet simulate / train / restore / eval with --device $dev"
      echo
      for s in "${trip_md[@]}"; do echo "$s"; done
    fi
    if [[ -n "$table1_md" && -f "$table1_md" ]]; then
      echo
      echo "## Short GPU Table 1 run"
      echo
      echo "\`bench_table1 --mode full --device $dev --datasets nuclei --n 1 --size 256 --epochs 20\` (bench/REPRODUCE.md):"
      echo
      sed 's/^#/###/' "$table1_md"
    fi
  } >"$summary"
  if [[ -n "${OUT:-}" ]]; then
    cp "$summary" "$OUT/" 2>/dev/null
    tar -czf "$OUT/gpu_demo_logs.tgz" -C "$work" logs 2>/dev/null
  fi
}

# Peak GPU memory while a command runs: nvidia-smi samples every 500 ms into a file.
gpu_mem_start() {
  : >"$logs/gpu_mem.txt"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 >"$logs/gpu_mem.txt" 2>/dev/null &
    mem_pid=$!
  else
    mem_pid=""
  fi
}
gpu_mem_stop() {  # prints the peak in MiB, or "?"
  [[ -n "$mem_pid" ]] && kill "$mem_pid" 2>/dev/null && wait "$mem_pid" 2>/dev/null
  sort -n "$logs/gpu_mem.txt" 2>/dev/null | tail -1 | grep . || echo "?"
}

# eval_line PRED GT [--no-fit]: "PSNR x dB   SSIM y" from `isonet eval`, or the error.
eval_line() {
  local out
  out=$("$isonet" eval --pred "$1" --gt "$2" "${@:3}" 2>&1)
  grep -m1 -E '^PSNR ' <<<"$out" || echo "eval failed: $(tail -1 <<<"$out")"
}

gpu_env

# 1. build (the targets this script runs)
t0=$(now)
lim=$(limit 100000 60)
timeout -k 10 "$lim" bash -c 'source bench/gpu_build.sh && gpu_build "$1" isonet bench_table1' gpu_build "$logs"
case $? in
  0) record build "ok: isonet and bench_table1 up to date in $GPU_BUILD ($(($(now) - t0)) s)" ;;
  124 | 137) record build "STOPPED at the ${lim} s limit" ;;
  *) record build "FAILED (see build.log / configure.log in the logs; $(($(now) - t0)) s)" ;;
esac
write_summary
if [[ ! -x "$isonet" ]]; then
  record demo "not run: $isonet was not built"
  write_summary
  exit 0
fi

# 2. the full demo
t0=$(now)
lim=$(limit 100000 90)
((lim < 30)) && lim=30  # the demo is the point of the call: it gets 30 s whatever the reserve
[[ -n "${ISONET_DEMO_TIMEOUT:-}" ]] && ((ISONET_DEMO_TIMEOUT < lim)) && lim=$ISONET_DEMO_TIMEOUT
gpu_mem_start
# stdout line-buffered (stdbuf): into a pipe it would be block-buffered, so the phase lines would
# arrive late (wrong phase times) or, when the demo is stopped, not at all.
linebuf=()
command -v stdbuf >/dev/null 2>&1 && linebuf=(stdbuf -oL -eL)
# shellcheck disable=SC2086  # ISONET_DEMO_ARGS is a list of words
timeout -k 10 "$lim" "${linebuf[@]}" "$isonet" demo --full --device "$dev" --out-dir "$work/demo_full" ${ISONET_DEMO_ARGS:-} 2>&1 |
  stamp_lines >"$logs/demo.log"
demo_rc=${PIPESTATUS[0]}
peak=$(gpu_mem_stop)
dt=$(($(now) - t0))
dlog=$logs/demo.log
header=$(grep -m1 -oE 'demo: [0-9]+\^3 .*' "$dlog")
batch=$(grep -m1 -oE 'steps of batch [0-9]+' <<<"$header" | grep -oE '[0-9]+$')
last_step=$(grep -oE 'step [0-9]+/[0-9]+ .*' "$dlog" | tail -1)
phase=$(grep -oE '== [a-z].*' "$dlog" | tail -1)
if ((demo_rc == 0)); then
  record demo "ok ($dt s, exit 0)"
elif ((demo_rc == 124 || demo_rc == 137)); then
  record demo "STOPPED at the ${lim} s limit, in phase '${phase#== }'; last progress: ${last_step:-none}"
else
  record demo "FAILED rc=$demo_rc after $dt s, in phase '${phase#== }': $(sed -E 's/^[0-9]+ //' "$dlog" | grep -m1 'error' || sed -E 's/^[0-9]+ //' "$dlog" | tail -1)"
fi
demo_md+=("${header:-no header line (see demo.log)}")
demo_md+=("")
if grep -q 'method  *PSNR' "$dlog"; then
  demo_md+=("| method | PSNR (dB) | SSIM |" "|---|---|---|")
  while IFS= read -r row; do demo_md+=("$row"); done < <(
    sed -E 's/^[0-9]+ //' "$dlog" | sed -n '/^method  *PSNR/,/^(after/p' | grep -vE '^(method|\(after)' |
      awk 'NF >= 3 {p = $(NF - 1); s = $NF; $NF = ""; $(NF - 1) = ""; sub(/ +$/, ""); print "| " $0 " | " p " | " s " |"}')
  demo_md+=("" "(against the isotropic ground truth, after the least-squares affine fit)")
else
  demo_md+=("No score table (the demo did not reach it).")
fi
# Phase times from the line stamps: each "== phase" line starts a phase that ends at the next.
demo_md+=("" "| phase | s |" "|---|---|")
while IFS=$'\t' read -r name secs; do demo_md+=("| $name | $secs |"); done < <(
  awk -v end="$(now)" '/^[0-9]+ == / {if (p != "") print p "\t" $1 - t; p = $3; for (i = 4; i <= NF; ++i) p = p " " $i; t = $1}
       END {if (p != "") print p "\t" end - t}' "$dlog")
demo_md+=("| total (wall, incl. start-up) | $dt |")
demo_md+=("")
if [[ -n "$last_step" ]]; then
  rate=$(grep -oE '[0-9.]+ patches/s' <<<"$last_step" | grep -oE '^[0-9.]+')
  sps=$([[ -n "$rate" && -n "$batch" ]] && awk -v r="$rate" -v b="$batch" 'BEGIN {printf "%.1f", r / b}')
  demo_md+=("- training: last progress line \`${last_step}\`: ${sps:-?} steps/s at batch ${batch:-?}")
fi
demo_md+=("- peak GPU memory in use during the demo (nvidia-smi, every 0.5 s): ${peak} MiB")
demo_md+=("- $(sed -E 's/^[0-9]+ //' "$dlog" | grep -m1 -E 'demo: [0-9.]+ s in total' || echo 'no total time line (the demo did not finish)')")
for f in preview.png loss.png; do
  [[ -f "$work/demo_full/$f" && -n "${OUT:-}" ]] && cp "$work/demo_full/$f" "$OUT/demo_full_$f"
done
write_summary

# 3. round trip through the command line
t0=$(now)
rt=$work/roundtrip
mkdir -p "$rt"
if (($(limit 100000 0) < 60)); then
  record roundtrip "not run (time budget spent)"
else
  ok=1
  run_step() {  # run_step NAME CMD...: one command into its log; 0 when it succeeded
    local name=$1
    shift
    local lim
    lim=$(limit 200 5)
    if ((lim < 10)); then
      trip_md+=("- $name: not run (time budget spent)")
      return 1
    fi
    local t rc
    t=$(now)
    timeout -k 5 "$lim" "$@" >"$logs/rt_$name.log" 2>&1
    rc=$?
    if ((rc == 0)); then
      trip_md+=("- $name: ok ($(($(now) - t)) s)")
      return 0
    fi
    trip_md+=("- $name: **FAILED** rc=$rc ($(($(now) - t)) s): $(grep -m1 'error' "$logs/rt_$name.log" || tail -1 "$logs/rt_$name.log")")
    return 1
  }
  run_step simulate "$isonet" simulate --size "$rt_size" --psf gaussian:2,8 --subsample 8 --radius 8 --device "$dev" \
    --out-prefix "$rt/sim" || ok=0
  ((ok)) && { run_step train "$isonet" train --input "$rt/sim_aniso.tif" --psf gaussian:2,8 --steps "$rt_steps" \
    --batch 16 --patch 64 --seed 3 --device "$dev" --checkpoint-every 0 --out "$rt/model.safetensors" || ok=0; }
  if ((ok)); then
    last=$(grep -oE 'step [0-9]+/[0-9]+ .*' "$logs/rt_train.log" | tail -1)
    rate=$(grep -oE '[0-9.]+ patches/s' <<<"$last" | grep -oE '^[0-9.]+')
    trip_md+=("  - $rt_size^3 volume; \`$last\` = $(awk -v r="${rate:-0}" 'BEGIN {printf "%.1f", r / 16}') steps/s at batch 16")
    for d in cuda cpu; do
      [[ $d == cuda ]] && rd=$dev || rd=cpu
      run_step "restore_$d" "$isonet" restore --model "$rt/model.safetensors" --input "$rt/sim_aniso.tif" \
        --output "$rt/restored_$d.tif" --device "$rd"
    done
    # The smallest budget that still takes one tile, read from the refusal of a 1 MB budget ("give
    # --max-memory N or more"); tiles are forced when it is below one whole slice.
    need=$("$isonet" restore --model "$rt/model.safetensors" --input "$rt/sim_aniso.tif" --output "$rt/none.tif" \
      --device "$dev" --max-memory 1 2>&1 | grep -oE 'give --max-memory [0-9]+' | grep -oE '[0-9]+$')
    mm=$((${need:-40} + 1))
    run_step restore_cuda_tiled "$isonet" restore --model "$rt/model.safetensors" --input "$rt/sim_aniso.tif" \
      --output "$rt/restored_cuda_tiled.tif" --device "$dev" --max-memory "$mm"
    grep -q 'tiles of' "$logs/rt_restore_cuda_tiled.log" 2>/dev/null &&
      trip_md+=("  - --max-memory $mm MB: $(grep -m1 -oE '[0-9]+ XZ slices.*' "$logs/rt_restore_cuda_tiled.log")") ||
      trip_md+=("  - **tiling was not forced** with --max-memory $mm MB (see rt_restore_cuda_tiled.log)")
    # The same training and restore with the convolutions on TF32 tensor cores (--math tf32): the
    # model should be as good as the fp32 one (~1e-3 rounding per conv; training drifts apart).
    if [[ $dev == cuda ]] && run_step train_tf32 "$isonet" train --input "$rt/sim_aniso.tif" --psf gaussian:2,8 \
      --steps "$rt_steps" --batch 16 --patch 64 --seed 3 --device cuda --math tf32 --checkpoint-every 0 \
      --out "$rt/model_tf32.safetensors"; then
      last=$(grep -oE 'step [0-9]+/[0-9]+ .*' "$logs/rt_train_tf32.log" | tail -1)
      rate=$(grep -oE '[0-9.]+ patches/s' <<<"$last" | grep -oE '^[0-9.]+')
      trip_md+=("  - TF32: \`$last\` = $(awk -v r="${rate:-0}" 'BEGIN {printf "%.1f", r / 16}') steps/s at batch 16")
      run_step restore_cuda_tf32 "$isonet" restore --model "$rt/model_tf32.safetensors" --input "$rt/sim_aniso.tif" \
        --output "$rt/restored_cuda_tf32.tif" --device cuda --math tf32
    fi
    trip_md+=("" "| compared | with | isonet eval |" "|---|---|---|")
    for d in cuda cpu cuda_tiled cuda_tf32; do
      [[ -f "$rt/restored_$d.tif" ]] && trip_md+=("| restored ($d) | ground truth (affine fit) | $(eval_line "$rt/restored_$d.tif" "$rt/sim_gt.tif") |")
    done
    [[ -f "$rt/restored_cuda.tif" && -f "$rt/restored_cpu.tif" ]] &&
      trip_md+=("| restored (cuda) | restored (cpu), no fit | $(eval_line "$rt/restored_cuda.tif" "$rt/restored_cpu.tif" --no-fit) |")
    [[ -f "$rt/restored_cuda.tif" && -f "$rt/restored_cuda_tiled.tif" ]] &&
      trip_md+=("| restored (cuda, tiles) | restored (cuda, whole slices), no fit | $(eval_line "$rt/restored_cuda_tiled.tif" "$rt/restored_cuda.tif" --no-fit) |")
    trip_md+=("" "(cuda against cpu and tiled against untiled should agree to float rounding: PSNR far above 60 dB)")
  fi
  record roundtrip "done ($(($(now) - t0)) s; details below)"
fi
write_summary

# 4. short Table 1 run with what is left
t0=$(now)
lim=$(limit 100000 10)
if [[ ! -x "$GPU_BUILD/bench/bench_table1" ]]; then
  record table1 "not run: bench_table1 was not built"
elif ((lim < 60)); then
  record table1 "not run (${lim} s left)"
else
  table1_md=$logs/table1_short_cuda.md
  ISONET_COMMIT=$(gpu_commit) timeout -k 10 "$lim" "$GPU_BUILD/bench/bench_table1" --mode full --device "$dev" \
    --datasets nuclei --n 1 --size 256 --epochs 20 --out-md "$table1_md" --out-json "$logs/table1_short_cuda.json" \
    >"$logs/table1.log" 2>&1
  rc=$?
  case $rc in
    0) record table1 "ok ($(($(now) - t0)) s)" ;;
    124 | 137) record table1 "STOPPED at the ${lim} s limit, no result (with --n 1 the tables are written when the volume is done)" ;;
    *) record table1 "FAILED rc=$rc ($(($(now) - t0)) s): $(tail -1 "$logs/table1.log")" ;;
  esac
fi
record total "$(($(now) - start)) s of the ${budget} s budget"
write_summary
note "summary written to $summary${OUT:+ and copied to $OUT}"
exit 0
