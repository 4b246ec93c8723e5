#!/usr/bin/env bash
# CI's check that the benchmark scripts still work (not a measurement: 1 s runs, tiny counts):
# scripts/prism-bench.sh (Stoplight Prism from npm against `rehearsal serve`, both driven by
# `rehearsal bench rest --foreign`) and scripts/fanout-chart.sh (fan-out runs with the floor,
# drawn as an SVG). The `rehearsal bench` commands themselves are smoke-tested by
# cli/tests/bench.rs. REHEARSAL_BIN: the binary to use (default target/debug/rehearsal).
set -euo pipefail
cd "$(dirname "$0")/.."
export REHEARSAL_BIN=${REHEARSAL_BIN:-$(pwd)/target/debug/rehearsal}
test -x "$REHEARSAL_BIN" || { echo "bench-smoke: no $REHEARSAL_BIN (build it first)" >&2; exit 1; }
out=target/bench-smoke
mkdir -p "$out"

bash scripts/prism-bench.sh --smoke --connections 2 --json >"$out/prism.json"
python3 - "$out/prism.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["prism"]["ok"] and r["rehearsal"]["ok"], r
assert r["prism"]["foreign"] is True and r["prism"]["requests"] > 0, r["prism"]
assert r["rehearsal"]["conversations_per_answer"] == 50, r["rehearsal"]
assert r["ratio"] is not None and r["ratio"] > 0, r
print("prism-bench smoke: ok")
PY

bash scripts/fanout-chart.sh --smoke --out "$out/chart"
grep -q '<svg' "$out/chart/fanout-p99.svg"
grep -c '<circle' "$out/chart/fanout-p99.svg" | grep -qx 4
echo "fanout-chart smoke: ok"
