#!/usr/bin/env bash
# run_model_bench.sh [OUT_MD]: whole-model benchmark, ours (bench_model) against PyTorch
# (bench/torch_model_bench.py), on the CPU and, when a GPU is present and our binary has CUDA, on
# CUDA, in one run. Builds nothing. Prints each run's lines as it goes and a Markdown table at the
# end (device, arch, mode, ours and PyTorch patches/s, ratio ours/PyTorch, with the settings);
# writes the table to OUT_MD when given (rewritten after every run, so a run stopped by a timeout
# still leaves the rows it finished). See bench/README.md for how to read it.
#
# Environment (all optional):
#   ISONET_BUILD_DIR        build folder holding bench/bench_model (default: build-gpu if it has it, else build)
#   ISONET_PYTHON           python with torch and numpy (default: the first of python3, /usr/bin/python3 that has both)
#   ISONET_BENCH_CPU        0 skips the CPU runs (default 1)
#   ISONET_BENCH_CUDA       0 skips the CUDA runs (default 1: run them when there is a GPU)
#   ISONET_BENCH_ARCHS      architectures (default "isonet2 isonet1")
#   ISONET_BENCH_BATCH, ISONET_BENCH_PATCH     (default 16, 128)
#   ISONET_BENCH_THREADS    CPU threads for both sides (default: all cores, nproc)
#   ISONET_BENCH_CPU_WARMUP, ISONET_BENCH_CPU_ITERS    (default 1, 7)
#   ISONET_BENCH_CUDA_WARMUP, ISONET_BENCH_CUDA_ITERS  (default 10, 50)
#   ISONET_BENCH_CUDA_FFT   0 skips the extra CUDA run of IsoNet-2 with --conv fft (default 1: when
#                           isonet2 is benchmarked on CUDA, it runs right after ours' CUDA runs if
#                           the budget still holds its cap plus the PyTorch CUDA run's; the table
#                           gets "isonet2 (conv fft)" rows and a direct-vs-fft line; a skip is noted
#                           under "Not measured" without failing the script)
#   ISONET_BENCH_CUDA_RECORD 0 skips the extra CUDA run of IsoNet-2 with --record (recorded steps,
#                           CUDA graphs; default 1: the "isonet2 (recorded)" rows and a line vs the
#                           default run)
#   ISONET_BENCH_CUDA_TF32  0 skips the extra CUDA run of IsoNet-2 with --math tf32 (default 1: the
#                           same rule as the fft run, right after it; the table gets
#                           "isonet2 (math tf32)" rows against PyTorch's tf32 setting and a
#                           tf32-vs-fp32 line)
#   ISONET_BENCH_ROUNDS     CPU rounds, each running ours then PyTorch per architecture (default 1);
#                           more rounds even out a machine whose load changes (the table merges them)
#   ISONET_BENCH_BUDGET_S   total seconds for all runs (default 170: gpu_check.sh allows 180); a run
#                           gets at most what is left, and runs that no longer fit are skipped
#   ISONET_COMMIT           commit to record (the device copy of the tree may have no .git)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

out_md=${1:-}
build=${ISONET_BUILD_DIR:-}
if [[ -z "$build" ]]; then
  if [[ -x build-gpu/bench/bench_model ]]; then build="build-gpu"; else build="build"; fi
fi
exe=$build/bench/bench_model
if [[ ! -x "$exe" ]]; then
  echo "run_model_bench: $exe not found; build it first: cmake --build $build --target bench_model" >&2
  exit 1
fi

# The python that has torch and numpy (scripts/torch_reference.py needs both); it renders the
# table too (plain json is enough for that).
py=""
for p in ${ISONET_PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch, numpy' >/dev/null 2>&1; then py=$p; break; fi
done
render_py=${py:-python3}
[[ -z "$py" ]] && echo "run_model_bench: no python with torch and numpy found (tried ${ISONET_PYTHON:-} python3 /usr/bin/python3): PyTorch columns stay empty"

archs=${ISONET_BENCH_ARCHS:-isonet2 isonet1}
batch=${ISONET_BENCH_BATCH:-16}
patch=${ISONET_BENCH_PATCH:-128}
threads=${ISONET_BENCH_THREADS:-$(nproc)}
budget=${ISONET_BENCH_BUDGET_S:-170}
rounds=${ISONET_BENCH_ROUNDS:-1}
commit=${ISONET_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
if [[ -z "${ISONET_COMMIT:-}" && "$commit" != unknown ]] && ! git diff --quiet HEAD 2>/dev/null; then
  commit="$commit (+ uncommitted changes in the tree)"
fi
cpu_model=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')
torch_version=$([[ -n "$py" ]] && "$py" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)

gpu_name=""
gpu_unusable=""
if [[ "${ISONET_BENCH_CUDA:-1}" != 0 ]] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  probe=$("$exe" --probe 2>/dev/null)
  if [[ "$probe" == *'"built_with_cuda":true'* && "$probe" != *'"cuda_devices":0'* ]]; then
    gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  else
    gpu_unusable="cuda: not run: nvidia-smi works but $exe cannot use the GPU (probe: ${probe:-no answer})"
    echo "run_model_bench: $gpu_unusable"
  fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results=$work/results.jsonl   # one JSON line per run and PyTorch setting
failures=$work/failures.txt   # one line per run that failed or was skipped
notes=$work/notes.txt         # optional runs skipped (listed with the failures, exit status unchanged)
: >"$results"
: >"$notes"
echo "${gpu_unusable:-}" | grep . >"$failures"
load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)

# Renders the Markdown table from the results so far (to stdout).
render() {
  RESULTS=$results FAILURES=$failures NOTES=$notes BATCH=$batch PATCH=$patch THREADS=$threads COMMIT=$commit \
  CPU_MODEL=$cpu_model GPU_NAME=$gpu_name TORCH=$torch_version BUILD=$build LOAD_START=$load_start \
  LOAD_NOW="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)" NPROC=$(nproc) \
  CPU_ITERS="${ISONET_BENCH_CPU_WARMUP:-1}/${ISONET_BENCH_CPU_ITERS:-7}" \
  CUDA_ITERS="${ISONET_BENCH_CUDA_WARMUP:-10}/${ISONET_BENCH_CUDA_ITERS:-50}" ROUNDS=$rounds \
  "$render_py" - <<'EOF'
import json, os, time
import statistics
raw = [json.loads(l) for l in open(os.environ["RESULTS"]) if l.startswith("{")]
# Rounds (ISONET_BENCH_ROUNDS) of the same run are merged: median of the round medians, the
# extremes of all iterations.
groups = {}
for r in raw:
    r.setdefault("conv", "auto")  # PyTorch rows and older bench_model builds state none
    r.setdefault("math", "fp32")
    r.setdefault("record", False)  # bench_model --record (recorded steps: CUDA graphs)
    groups.setdefault((r["impl"], r["device"], r["arch"], r["conv"], r["math"], r["record"], r["precision"]),
                      []).append(r)
rows = []
for g in groups.values():
    r = dict(g[0], rounds=len(g))
    for mode in ("train", "forward"):
        med = statistics.median([x[mode]["median_ms"] for x in g])
        r[mode] = {"median_ms": med, "min_ms": min(x[mode]["min_ms"] for x in g),
                   "max_ms": max(x[mode]["max_ms"] for x in g), "patches_per_s": r["batch"] / (med * 1e-3)}
        if "gflop" in g[0][mode]:
            r[mode]["gflops"] = g[0][mode]["gflop"] / (med * 1e-3)
    rows.append(r)
ours = {(r["device"], r["arch"], r["conv"], r["math"], r["record"]): r for r in rows if r["impl"] == "isonet-cuda"}
DEFAULT = ("auto", "fp32", False)
torch_rows = [r for r in rows if r["impl"] == "pytorch"]
e = os.environ
print("# Whole-model benchmark: isonet-cuda vs PyTorch")
print()
print("- date: %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
print("- commit: %s (build folder %s)" % (e["COMMIT"], e["BUILD"]))
print("- batch %s, patch %sx%s, float32 everywhere except the rows marked tf32 (ours: \"(math tf32)\", "
      "PyTorch: tf32+bench)" % (e["BATCH"], e["PATCH"], e["PATCH"]))
print("- CPU: %s, %s cores; both sides run %s threads; warm-up/iterations %s; rounds %s" % (
    e["CPU_MODEL"], e["NPROC"], e["THREADS"], e["CPU_ITERS"], e["ROUNDS"]))
if e["GPU_NAME"]:
    print("- GPU: %s; warm-up/iterations %s" % (e["GPU_NAME"], e["CUDA_ITERS"]))
print("- PyTorch %s, eager mode; load average at start %s, at this table %s" % (e["TORCH"], e["LOAD_START"], e["LOAD_NOW"]))
print("- train step = forward with dropout 0.2 + PSNR loss + backward + Adam (lr 5e-3), synchronized; "
      "forward = inference, no dropout. Median over the iterations (with several rounds: the median of the "
      "round medians, min-max over all); patches/s = batch / median step time; "
      "ratio > 1: ours is faster. GFLOP/s counts the convolutions only (from ours' count).")
print()
print("| device | arch | mode | ours patches/s | ours ms (min-max) | ours GFLOP/s | PyTorch setting | PyTorch patches/s | PyTorch ms (min-max) | ratio ours/PyTorch |")
print("|---|---|---|---|---|---|---|---|---|---|")
def ms(b):
    return "%.2f (%.2f-%.2f)" % (b["median_ms"], b["min_ms"], b["max_ms"])
# Ours with a forced conv algorithm (bench_model --conv), TF32 math (--math tf32) or recorded steps
# (--record: CUDA graphs) gets its own rows, "ARCH (conv ALGO)" / "ARCH (math tf32)" /
# "ARCH (recorded)": against the same PyTorch rows, except tf32 against PyTorch's TF32 setting only
# (like-for-like arithmetic).
def setting(conv, math, record):
    return ", ".join(([] if conv == "auto" else ["conv " + conv]) + ([] if math == "fp32" else ["math " + math])
                     + (["recorded"] if record else []))
keys = list(dict.fromkeys([(r["device"], r["arch"], r["conv"], r["math"], r["record"]) for r in rows]))
for dev, arch, conv, math, record in keys:
    o = ours.get((dev, arch, conv, math, record))
    if (conv, math, record) != DEFAULT and not o:
        continue
    ts = [r for r in torch_rows if (r["device"], r["arch"]) == (dev, arch)
          and (math == "fp32" or r["precision"].startswith(math))] or [None]
    label = "%s (%s)" % (arch, setting(conv, math, record)) if setting(conv, math, record) else arch
    for mode in ("train", "forward"):
        for t in ts:
            ob, tb = (o[mode] if o else None), (t[mode] if t else None)
            cells = [dev, label, "train step" if mode == "train" else "forward",
                     "%.1f" % ob["patches_per_s"] if ob else "-", ms(ob) if ob else "-",
                     "%.0f" % ob["gflops"] if ob else "-",
                     t["precision"] if t else "-",
                     "%.1f" % tb["patches_per_s"] if tb else "-", ms(tb) if tb else "-",
                     "**%.2f**" % (ob["patches_per_s"] / tb["patches_per_s"]) if ob and tb else "-"]
            print("| " + " | ".join(cells) + " |")
# The conv algorithms, maths and recording side by side against the default run (conv auto, which
# on CUDA is direct, kernels/conv2d.h; math fp32; unrecorded).
for (dev, arch, conv, math, record), o in ours.items():
    a = ours.get((dev, arch) + DEFAULT)
    if (conv, math, record) == DEFAULT or not a:
        continue
    changed = ([] if conv == "auto" else [conv]) + ([] if math == "fp32" else [math]) + (["recorded"] if record else [])
    base = (([] if conv == "auto" else ["direct" if dev == "cuda" else "auto"]) + ([] if math == "fp32" else ["fp32"])
            + (["unrecorded"] if record else []))
    print()
    print("%s %s, %s vs %s: train step %.2f vs %.2f ms (%.2fx), forward %.2f vs %.2f ms (%.2fx); "
          "> 1x: %s is faster" % (dev, arch, setting(conv, math, record), ", ".join(base), o["train"]["median_ms"],
                                  a["train"]["median_ms"], a["train"]["median_ms"] / o["train"]["median_ms"],
                                  o["forward"]["median_ms"], a["forward"]["median_ms"],
                                  a["forward"]["median_ms"] / o["forward"]["median_ms"], ", ".join(changed)))
fails = [l.strip() for l in open(os.environ["FAILURES"]) if l.strip()]
fails += [l.strip() for l in open(os.environ["NOTES"]) if l.strip()]
if fails:
    print()
    print("Not measured:")
    for f in fails:
        print("- " + f)
print()
print("PyTorch settings: fp32 = TF32 off (torch.backends.cuda.matmul/cudnn.allow_tf32 = False), "
      "cudnn.benchmark off; fp32+bench = the same with cudnn.benchmark = True; tf32+bench = TF32 allowed "
      "and cudnn.benchmark = True. On CUDA the times are host-clock times of synchronized steps.")
EOF
}

# Writes the table so far to OUT_MD (when given).
save() { [[ -n "$out_md" ]] && render >"$out_md"; }

# run_one LABEL CAP_S CMD...: runs CMD with at most min(CAP_S, budget left) seconds, appends its
# JSON lines to the results and its failure (or skip) to the failures.
run_one() {
  local label=$1 cap=$2
  shift 2
  local left=$((budget - SECONDS))
  if ((left < 10)); then
    echo "$label: skipped (the ${budget} s budget is spent)" | tee -a "$failures"
    return
  fi
  local limit=$((cap < left ? cap : left))
  echo "== $label (limit ${limit} s)"
  timeout "$limit" "$@" >"$work/out.txt" 2>&1
  local rc=$?
  cat "$work/out.txt"
  grep '^{' "$work/out.txt" >>"$results"
  if ((rc != 0)); then
    local why="rc=$rc"
    ((rc == 124)) && why="timed out after ${limit} s"
    echo "$label: FAILED ($why; last line: $(tail -1 "$work/out.txt"))" >>"$failures"
  fi
  save
}

# run_optional LABEL NEED_S CAP_S CMD...: run_one, only while NEED_S seconds of the budget are left
# (else a note, not a failure).
run_optional() {
  local label=$1 need=$2
  shift 2
  if ((budget - SECONDS < need)); then
    echo "$label: skipped (needs ${need} s of the budget, $((budget - SECONDS)) s left)" | tee -a "$notes"
    return
  fi
  run_one "$label" "$@"
}

torch_bench=(bench/torch_model_bench.py --batch "$batch" --patch "$patch" --json)

# CUDA first: on the GPU machine it is the point of the run.
if [[ -n "$gpu_name" ]]; then
  cw=${ISONET_BENCH_CUDA_WARMUP:-10}
  ci=${ISONET_BENCH_CUDA_ITERS:-50}
  for arch in $archs; do
    run_one "ours cuda $arch" 60 "$exe" --device cuda --arch "$arch" --batch "$batch" --patch "$patch" \
      --warmup "$cw" --iters "$ci" --json
  done
  # The CUDA FFT convs against Auto (direct on CUDA), right after it on the same warm GPU. It may
  # take its 45 s cap only if the PyTorch CUDA run's 90 s stay after it.
  if [[ "${ISONET_BENCH_CUDA_FFT:-1}" != 0 && " $archs " == *" isonet2 "* ]]; then
    run_optional "ours cuda isonet2 conv fft" $((45 + 90)) 45 "$exe" --device cuda --arch isonet2 --conv fft \
      --batch "$batch" --patch "$patch" --warmup "$cw" --iters "$ci" --json
  fi
  # Recorded training steps (--record: one CUDA graph launch per step), against the default run.
  if [[ "${ISONET_BENCH_CUDA_RECORD:-1}" != 0 && " $archs " == *" isonet2 "* ]]; then
    run_optional "ours cuda isonet2 recorded" $((45 + 90)) 45 "$exe" --device cuda --arch isonet2 --record \
      --batch "$batch" --patch "$patch" --warmup "$cw" --iters "$ci" --json
  fi
  # Our TF32 tensor-core convs (--math tf32), to set against PyTorch's tf32+bench row; same rule.
  if [[ "${ISONET_BENCH_CUDA_TF32:-1}" != 0 && " $archs " == *" isonet2 "* ]]; then
    run_optional "ours cuda isonet2 math tf32" $((45 + 90)) 45 "$exe" --device cuda --arch isonet2 --math tf32 \
      --batch "$batch" --patch "$patch" --warmup "$cw" --iters "$ci" --json
  fi
  if [[ -n "$py" ]]; then
    run_one "pytorch cuda ${archs// /,}" 90 "$py" "${torch_bench[@]}" --device cuda --arch "${archs// /,}" \
      --warmup "$cw" --iters "$ci"
  fi
fi

if [[ "${ISONET_BENCH_CPU:-1}" != 0 ]]; then
  w=${ISONET_BENCH_CPU_WARMUP:-1}
  it=${ISONET_BENCH_CPU_ITERS:-7}
  for ((round = 1; round <= rounds; ++round)); do
    for arch in $archs; do
      run_one "ours cpu $arch (round $round)" 300 "$exe" --device cpu --arch "$arch" --batch "$batch" --patch "$patch" \
        --warmup "$w" --iters "$it" --threads "$threads" --json
      if [[ -n "$py" ]]; then
        run_one "pytorch cpu $arch (round $round)" 300 "$py" "${torch_bench[@]}" --device cpu --arch "$arch" \
          --warmup "$w" --iters "$it" --threads "$threads"
      fi
    done
  done
fi

echo
render | tee "$work/table.md"
[[ -n "$out_md" ]] && cp "$work/table.md" "$out_md" && echo "run_model_bench: table written to $out_md"
# Non-zero when a run failed or was skipped, so gpu_check.sh records it (the table is written anyway).
[[ -s "$failures" ]] && exit 1
exit 0
