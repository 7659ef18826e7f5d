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
