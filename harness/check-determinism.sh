#!/usr/bin/env bash
# The determinism check: the scenario library must give the same verdicts run after run against
# the same client. Plays the library RUNS times (default 20) against the clean reference adapter,
# one run after the other, and compares each scenario's verdict across the runs; prints the number
# of runs and every scenario whose verdict varied (with its verdicts and the reasons given), and
# exits 1 if any varied, 2 if a run could not run (exit 2) or a report is missing.
#
#   bash harness/check-determinism.sh [RUNS]
#
# Environment: REHEARSAL_BIN (default target/debug/rehearsal), JOBS (default: rehearsal's
# default), CLIENT (default: the reference adapter), REHEARSAL_DETERMINISM_REPORTS (a folder: keep
# each run's JSON report there), REHEARSAL_BASELINE (the JSON report of a run already made, e.g.
# CI's conformance run: it counts as one of the RUNS), and any further `rehearsal run` arguments in
# RUN_ARGS (e.g. RUN_ARGS="--area token").
set -uo pipefail
cd "$(dirname "$0")/.."

runs=${1:-20}
bin=${REHEARSAL_BIN:-target/debug/rehearsal}
client=${CLIENT:-node adapters/twilio-conversations-js/adapter.mjs}
reports=${REHEARSAL_DETERMINISM_REPORTS:-$(mktemp -d)}
mkdir -p "$reports"
jobs_args=()
[ -n "${JOBS:-}" ] && jobs_args=(--jobs "$JOBS")
# shellcheck disable=SC2206 # word splitting of RUN_ARGS is intended
extra=(${RUN_ARGS:-})

case $runs in
  '' | *[!0-9]* | 0 | 1) echo "usage: $0 [RUNS] (RUNS >= 2)" >&2; exit 2 ;;
esac

started=$(date +%s)
files=()
first=1
if [ -n "${REHEARSAL_BASELINE:-}" ]; then
  [ -f "$REHEARSAL_BASELINE" ] || { echo "no report at $REHEARSAL_BASELINE" >&2; exit 2; }
  files+=("$REHEARSAL_BASELINE")
  echo "run  1/$runs: $REHEARSAL_BASELINE (given)"
  first=2
fi
for i in $(seq "$first" "$runs"); do
  report="$reports/run-$i.json"
  t0=$(date +%s)
  "$bin" run --client "$client" "${jobs_args[@]}" "${extra[@]}" --no-progress \
    --report "json=$report" >"$reports/run-$i.txt" 2>&1
  code=$?
  if [ "$code" -ne 0 ] && [ "$code" -ne 1 ]; then
    echo "run $i could not run (exit $code):"
    tail -20 "$reports/run-$i.txt" | sed 's/^/    /'
    exit 2
  fi
  [ -f "$report" ] || { echo "run $i wrote no report ($report)" >&2; exit 2; }
  printf 'run %2d/%s: exit %s in %ss — %s\n' "$i" "$runs" "$code" "$(($(date +%s) - t0))" \
    "$(grep -E '^[0-9]+ scenarios:' "$reports/run-$i.txt" | tail -1)"
  files+=("$report")
done

python3 - "${files[@]}" <<'EOF'
import json, sys
from collections import OrderedDict

verdicts = OrderedDict()   # id -> [verdict per run]
reasons = {}               # (id, verdict) -> a reason
for n, path in enumerate(sys.argv[1:]):
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    for s in report["scenarios"]:
        v = s["verdict"] + (" (deviated)" if s.get("deviated") else "")
        verdicts.setdefault(s["id"], [None] * len(sys.argv[1:]))[n] = v
        reasons.setdefault((s["id"], v), s.get("reason"))
    for sid in report["summary"].get("not_run", []):
        verdicts.setdefault(sid, [None] * len(sys.argv[1:]))[n] = "NOT RUN"

runs = len(sys.argv) - 1
varied = {sid: vs for sid, vs in verdicts.items() if len(set(vs)) > 1}
print(f"{runs} runs, {len(verdicts)} scenarios: "
      f"{len(verdicts) - len(varied)} with the same verdict in every run, {len(varied)} varied")
for sid, vs in varied.items():
    counts = {v: vs.count(v) for v in dict.fromkeys(vs)}
    print(f"  VARIED  {sid}: " + ", ".join(f"{v or 'missing'} ×{c}" for v, c in counts.items()))
    for v in counts:
        if v and reasons.get((sid, v)):
            print(f"          {v}: {reasons[(sid, v)]}")
sys.exit(1 if varied else 0)
EOF
code=$?
echo "determinism: $((${#files[@]})) runs in $(($(date +%s) - started))s; reports in $reports"
exit $code
