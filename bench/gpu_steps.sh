#!/usr/bin/env bash
# gpu_steps.sh: the step bookkeeping shared by bench/gpu_check.sh and bench/gpu_demo.sh (sourced):
# one deadline for the whole device call, the seconds a step may take, and the status lines that
# each script's summary lists.
# The sourcing script sets: deadline (epoch seconds), STEP_TAG (log prefix) and the array status.
# shellcheck disable=SC2154  # deadline and STEP_TAG come from the sourcing script

now() { date +%s; }
left() { echo $((deadline - $(now))); }
# limit CAP RESERVE: seconds a step may take: CAP, or less so that RESERVE seconds stay for the
# steps after it.
limit() {
  local l=$(($(left) - $2))
  echo $((l < $1 ? l : $1))
}
note() { echo "== $STEP_TAG: $*"; }
record() { status+=("$1: $2"); note "$1: $2"; }
# Summary lines quoting `isonet --version` of build folder $1 (the program's own view of the GPU:
# what --device auto uses), nothing when it is not built.
version_lines() {
  [[ -x "$1/apps/isonet" ]] || return 0
  echo "- isonet --version:"
  "$1/apps/isonet" --version 2>&1 | sed 's/^/  - /'
}
