#!/usr/bin/env bash
# The mutant check: the scenario library must catch real client bugs. For every mutant of the
# reference adapter (adapters/twilio-conversations-js/README.md; `--list-mutants`), play the
# areas the planted bug belongs to with `rehearsal run --mutant NAME --fail-fast` and require at
# least one FAILED scenario; print which. A mutant that passes everything ("survives") fails the
# check, and so does a run that could not run (exit 2).
#
#   bash harness/check-mutants.sh [MUTANT...]     # default: every mutant
#
# Environment: REHEARSAL_BIN (default target/debug/rehearsal), JOBS (default 2),
# REHEARSAL_MUTANT_REPORTS (a folder: keep each mutant's JSON report there),
# REHEARSAL_BASELINE (the JSON report of a run against the clean adapter: scenarios that FAILED
# there catch nothing, since they do not tell a mutant from the clean adapter).
set -uo pipefail
cd "$(dirname "$0")/.."

bin=${REHEARSAL_BIN:-target/debug/rehearsal}
jobs=${JOBS:-2}
adapter="node adapters/twilio-conversations-js/adapter.mjs"
reports=${REHEARSAL_MUTANT_REPORTS:-$(mktemp -d)}
mkdir -p "$reports"

# The areas where each planted bug shows; a mutant missing here is played on the whole library.
areas_of() {
  case $1 in
    ignore-expiry-warning | refresh-with-old-token | no-refresh-on-expired | fatal-update-token-error) echo token ;;
    no-reconnect-after-drop | tight-reconnect-loop) echo connection ;;
    skip-page) echo pagination ;;
    duplicate-message | out-of-order | drop-while-busy) echo messaging ;;
    miss-conversation-left | late-listeners) echo membership ;;
    wrong-media-content-type) echo media ;;
    stale-unread-count) echo read_horizon ;;
    *) echo "" ;;
  esac
}

if [ $# -gt 0 ]; then
  mutants="$*"
else
  mutants=$($adapter --list-mutants | cut -f1)
fi

started=$(date +%s)
survivors=()
broken=()
for m in $mutants; do
  args=()
  if [ -n "${REHEARSAL_BASELINE:-}" ]; then
    # The mutant's areas minus what fails with the clean adapter too: such a scenario would
    # end a --fail-fast run before a real catcher had its turn.
    for id in $(node -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const areas = process.argv.slice(2);
      for (const s of r.scenarios)
        if ((areas.length === 0 || areas.includes(s.area)) && s.verdict !== "FAILED") console.log(s.id);
    ' "$REHEARSAL_BASELINE" $(areas_of "$m")); do
      args+=(--scenario "$id")
    done
  else
    for a in $(areas_of "$m"); do args+=(--area "$a"); done
  fi
  if [ ${#args[@]} -eq 0 ] && [ -n "${REHEARSAL_BASELINE:-}" ]; then
    printf 'SURVIVED  %-26s       every scenario of its areas (%s) fails with the clean adapter\n' "$m" "$(areas_of "$m")"
    survivors+=("$m")
    continue
  fi
  report="$reports/$m.json"
  t0=$(date +%s)
  "$bin" run --client "$adapter --mutant $m" "${args[@]}" --jobs "$jobs" --fail-fast --no-progress \
    --report "json=$report" >"$reports/$m.txt" 2>&1
  code=$?
  took=$(($(date +%s) - t0))
  case $code in
    1)
      failed=$(node -e '
        const fs = require("fs");
        const failed = (path) => JSON.parse(fs.readFileSync(path, "utf8")).scenarios
          .filter((s) => s.verdict === "FAILED" && !s.deviated).map((s) => s.id);
        const clean = new Set(process.argv[2] ? failed(process.argv[2]) : []);
        console.log(failed(process.argv[1]).filter((id) => !clean.has(id)).join(", "));
      ' "$report" "${REHEARSAL_BASELINE:-}")
      if [ -n "$failed" ]; then
        printf 'caught    %-26s %4ss  by %s\n' "$m" "$took" "$failed"
      else
        printf 'SURVIVED  %-26s %4ss  only scenarios that fail with the clean adapter too failed\n' "$m" "$took"
        survivors+=("$m")
      fi
      ;;
    0)
      printf 'SURVIVED  %-26s %4ss  (areas: %s) — no scenario failed\n' "$m" "$took" "$(areas_of "$m")"
      survivors+=("$m")
      ;;
    *)
      printf 'ERROR     %-26s %4ss  exit %s:\n' "$m" "$took" "$code"
      sed 's/^/    /' "$reports/$m.txt" | tail -20
      broken+=("$m")
      ;;
  esac
done

total=$(echo $mutants | wc -w)
echo "mutants: $((total - ${#survivors[@]} - ${#broken[@]})) caught, ${#survivors[@]} survived, ${#broken[@]} could not run, in $(($(date +%s) - started))s"
if [ ${#survivors[@]} -gt 0 ] || [ ${#broken[@]} -gt 0 ]; then
  echo "reports in $reports"
  exit 1
fi
