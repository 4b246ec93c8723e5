#!/usr/bin/env bash
# The chart of BENCHMARKS.md: last-delivery p99 against subscribers (100, 1,000, 5,000, 10,000)
# for Rehearsal and the in-run floor, at one message rate. Runs `rehearsal bench fanout --floor
# --objects messages --json` once per count (each run measures Rehearsal, then the floor, in the
# same invocation), keeps the JSON reports in the output folder, and draws them as an SVG with
# scripts/fanout-chart.py (no plotting library needed).
#
# Usage: scripts/fanout-chart.sh [--rate 5] [--duration 10s] [--warmup 2s] [--out bench/chart]
#        [--counts "100 1000 5000 10000"] [--smoke]   (--smoke: 20 and 50 subscribers, 1 s; checks
#        the script, not a measurement)
# REHEARSAL_BIN: the rehearsal binary (default target/release/rehearsal, built if missing).
# 10,000 subscribers need ~10,000 descriptors in the server and in the bench (`ulimit -n`): the
# script raises the soft limit to the hard one and refuses counts above what it got.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

rate=5
duration=10s
warmup=2s
out=bench/chart
counts="100 1000 5000 10000"
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --counts) counts=$2; shift 2 ;;
    --smoke) counts="20 50"; duration=1s; warmup=0s; shift ;;
    *) echo "fanout-chart: unknown argument $1" >&2; exit 2 ;;
  esac
done

bin=${REHEARSAL_BIN:-$root/target/release/rehearsal}
if [ ! -x "$bin" ]; then
  echo "building $bin (cargo build --release -p rehearsal-cli)"
  cargo build --release -p rehearsal-cli --locked
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
limit=$(ulimit -n)
mkdir -p "$out"
files=()
for n in $counts; do
  # Each subscriber is one socket in the server and one in the bench, plus some headroom.
  if [ "$limit" != unlimited ] && [ "$n" -gt $((limit - 256)) ]; then
    echo "fanout-chart: $n subscribers need more than the $limit open files allowed (ulimit -n)" >&2
    exit 1
  fi
  echo "fanout: $n subscribers, $rate msg/s, $duration (+$warmup warm-up), with the floor"
  f="$out/fanout-$n.json"
  "$bin" bench fanout --subscribers "$n" --rate "$rate" --duration "$duration" --warmup "$warmup" \
    --objects messages --floor --json >"$f"
  files+=("$f")
done
python3 scripts/fanout-chart.py --out "$out/fanout-p99.svg" "${files[@]}"
echo "chart: $out/fanout-p99.svg"
