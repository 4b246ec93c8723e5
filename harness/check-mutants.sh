#!/usr/bin/env bash
# The mutant check: the scenario library must catch real client bugs. For every mutant of the
# reference adapter (adapters/twilio-conversations-js/README.md; `--list-mutants`), play the
# scenarios known to catch it with `rehearsal run --mutant NAME --fail-fast` and require at least
# one FAILED scenario; print which. If none of them fails, play the whole areas the planted bug
# belongs to before judging. A mutant that passes everything ("survives") fails the check, and so
# does a run that could not run (exit 2).
#
#   bash harness/check-mutants.sh [MUTANT...]     # default: every mutant
#
# Environment: REHEARSAL_BIN (default target/debug/rehearsal), JOBS (default 6: scenarios mostly
# wait on the SDK's timers, see README "How long it takes"), REHEARSAL_MUTANT_REPORTS (a folder:
# keep each mutant's JSON report there), REHEARSAL_BASELINE (the JSON report of a run against the
# clean adapter: scenarios that FAILED there catch nothing, since they do not tell a mutant from
# the clean adapter), MUTANT_AREAS=1 (skip the known catchers: play the whole areas at once).
set -uo pipefail
cd "$(dirname "$0")/.."

bin=${REHEARSAL_BIN:-target/debug/rehearsal}
jobs=${JOBS:-6}
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

# Scenarios that catch each planted bug (measured by playing the whole library against every
# mutant), a few short ones each: played first, all at once. A mutant missing here is played on
# its areas straight away.
catchers_of() {
  case $1 in
    ignore-expiry-warning) echo token.quickstart-refresh-on-warning token.three-moments-by-clock ;;
    refresh-with-old-token) echo token.quickstart-refresh-on-warning token.quickstart-expired-reconnects token.stale-start-recovers-by-itself ;;
    no-refresh-on-expired) echo token.quickstart-expired-reconnects token.stale-start-recovers-by-itself ;;
    fatal-update-token-error) echo token.stale-start-recovers-by-itself ;;
    no-reconnect-after-drop) echo connection.drop-reconnects connection.drop-state-sequence connection.drop-replays-missed-messages ;;
    tight-reconnect-loop) echo connection.drop-reconnects connection.refused-retries-with-backoff token.refresh-while-disconnected ;;
    skip-page) echo pagination.page-size-extremes ;;
    duplicate-message) echo messaging.burst-of-hundred messaging.fan-out-order-three-clients connection.drop-replays-missed-messages ;;
    out-of-order) echo messaging.burst-of-hundred messaging.fan-out-order-three-clients messaging.held-notifications-released ;;
    drop-while-busy) echo messaging.fan-out-order-three-clients messaging.held-notifications-released ;;
    miss-conversation-left) echo membership.conversation-deleted membership.re-added ;;
    late-listeners) echo membership.client-leaves messaging.send-reaches-others typing.ended-by-message ;;
    wrong-media-content-type) echo media.content-types media.upload-integrity ;;
    stale-unread-count) echo read_horizon.advance-to-last ;;
    *) echo "" ;;
  esac
}

# The scenarios of `ids` (or, when none are given, of `areas`) that do not fail with the clean
# adapter (REHEARSAL_BASELINE), one per line.
playable() {
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const [ids, areas] = [process.argv[2].split(" ").filter(Boolean), process.argv[3].split(" ").filter(Boolean)];
    for (const s of r.scenarios) {
      const wanted = ids.length > 0 ? ids.includes(s.id) : areas.length === 0 || areas.includes(s.area);
      if (wanted && s.verdict !== "FAILED") console.log(s.id);
    }
  ' "$REHEARSAL_BASELINE" "$1" "$2"
}

if [ $# -gt 0 ]; then
  mutants="$*"
else
  mutants=$($adapter --list-mutants | cut -f1)
fi

started=$(date +%s)
survivors=()
broken=()
# play MUTANT LABEL SCENARIO-IDS AREAS: one `rehearsal run` of the mutant on the given scenarios
# (else on the areas, else on everything); sets `code`, `took`, `failed` (the scenarios that
# FAILED and not with the clean adapter) and `report`.
play() {
  local m=$1 label=$2 ids=$3 areas=$4 args=() id a
  if [ -n "${REHEARSAL_BASELINE:-}" ]; then
    # Minus what fails with the clean adapter too: such a scenario would end a --fail-fast run
    # before a real catcher had its turn.
    for id in $(playable "$ids" "$areas"); do args+=(--scenario "$id"); done
    if [ ${#args[@]} -eq 0 ]; then
      code=none took=0 failed="" report=""
      return
    fi
  elif [ -n "$ids" ]; then
    for id in $ids; do args+=(--scenario "$id"); done
  else
    for a in $areas; do args+=(--area "$a"); done
  fi
  report="$reports/$m.$label.json"
  local t0
  t0=$(date +%s)
  "$bin" run --client "$adapter --mutant $m" "${args[@]}" --jobs "$jobs" --fail-fast --no-progress \
    --report "json=$report" >"$reports/$m.$label.txt" 2>&1
  code=$?
  took=$(($(date +%s) - t0))
  failed=""
  if [ "$code" = 1 ]; then
    failed=$(node -e '
      const fs = require("fs");
      const failed = (path) => JSON.parse(fs.readFileSync(path, "utf8")).scenarios
        .filter((s) => s.verdict === "FAILED" && !s.deviated).map((s) => s.id);
      const clean = new Set(process.argv[2] ? failed(process.argv[2]) : []);
      console.log(failed(process.argv[1]).filter((id) => !clean.has(id)).join(", "));
    ' "$report" "${REHEARSAL_BASELINE:-}")
  fi
}

# check MUTANT: plays it and writes its one-line verdict (caught, SURVIVED or ERROR first) to
# $reports/MUTANT.result.
check() {
  local m=$1 areas catchers how first_took
  areas=$(areas_of "$m")
  catchers=""
  [ -z "${MUTANT_AREAS:-}" ] && catchers=$(catchers_of "$m")
  code=none took=0 failed="" report=""
  if [ -n "$catchers" ]; then
    play "$m" catchers "$catchers" "$areas"
    how="by"
  fi
  if [ -z "$catchers" ] || { [ "$code" != 2 ] && [ -z "$failed" ]; }; then
    # No known catcher, or none caught it: the whole areas (everything when it has none).
    first_took=$took
    play "$m" areas "" "$areas"
    took=$((took + first_took))
    how="by (areas: ${areas:-all})"
  fi
  {
    case $code in
      none)
        printf 'SURVIVED  %-26s       every scenario of its areas (%s) fails with the clean adapter\n' "$m" "$areas"
        ;;
      2)
        printf 'ERROR     %-26s %4ss  exit %s:\n' "$m" "$took" "$code"
        sed 's/^/    /' "${report%.json}.txt" | tail -20
        ;;
      *)
        if [ -n "$failed" ]; then
          printf 'caught    %-26s %4ss  %s %s\n' "$m" "$took" "$how" "$failed"
        elif [ "$code" = 1 ]; then
          printf 'SURVIVED  %-26s %4ss  only scenarios that fail with the clean adapter too failed\n' "$m" "$took"
        else
          printf 'SURVIVED  %-26s %4ss  (areas: %s) — no scenario failed\n' "$m" "$took" "$areas"
        fi
        ;;
    esac
  } >"$reports/$m.result"
}

# Mutants are checked MUTANT_JOBS at a time (default 3), each run with JOBS scenarios at once.
parallel=${MUTANT_JOBS:-3}
for m in $mutants; do
  rm -f "$reports/$m.result"
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n; done
  check "$m" &
done
wait
for m in $mutants; do
  if [ ! -f "$reports/$m.result" ]; then
    printf 'ERROR     %-26s        the check did not finish\n' "$m"
    broken+=("$m")
    continue
  fi
  cat "$reports/$m.result"
  case $(head -c 8 "$reports/$m.result") in
    caught*) ;;
    ERROR*) broken+=("$m") ;;
    *) survivors+=("$m") ;;
  esac
done

total=$(echo $mutants | wc -w)
echo "mutants: $((total - ${#survivors[@]} - ${#broken[@]})) caught, ${#survivors[@]} survived, ${#broken[@]} could not run, in $(($(date +%s) - started))s"
if [ ${#survivors[@]} -gt 0 ] || [ ${#broken[@]} -gt 0 ]; then
  echo "reports in $reports"
  exit 1
fi
