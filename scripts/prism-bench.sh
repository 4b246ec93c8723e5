#!/usr/bin/env bash
# REST throughput of Rehearsal against Stoplight Prism, measured in one run with the same load
# generator (issue 13's "REST list of 50 conversations >= 50x Prism").
#
# Installs Prism from npm (pinned in bench/prism/package-lock.json), serves Twilio's OpenAPI
# description of Conversations v1 with it, and drives Prism and then `rehearsal serve` (a child
# of the bench) with `rehearsal bench rest`: GET /v1/Conversations?PageSize=50 over the same
# number of keep-alive connections for the same time. Prints both reports and the ratio; with
# --json, one JSON object {prism, rehearsal, ratio}.
#
# The spec comes from the npm package the tests use (e2e/: `npm ci` there); REHEARSAL_OPENAPI_SPEC
# names another copy of twilio_conversations_v1.json.
#
# Usage: scripts/prism-bench.sh [--connections N] [--duration 10s] [--warmup 2s] [--json]
#        [--smoke]   (1 s each: checks that the script works, not a measurement)
# REHEARSAL_BIN: the rehearsal binary (default target/release/rehearsal, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

connections=16
duration=10s
warmup=2s
json=false
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) connections=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --json) json=true; shift ;;
    --smoke) duration=1s; warmup=0s; shift ;;
    *) echo "prism-bench: unknown argument $1" >&2; exit 2 ;;
  esac
done

say() { if [ "$json" = false ]; then printf '%s\n' "$*"; else printf '%s\n' "$*" >&2; fi; }

bin=${REHEARSAL_BIN:-$root/target/release/rehearsal}
if [ ! -x "$bin" ]; then
  say "building $bin (cargo build --release -p rehearsal-cli)"
  cargo build --release -p rehearsal-cli --locked >&2
fi

spec=${REHEARSAL_OPENAPI_SPEC:-$root/e2e/node_modules/@twilio-alpha/mcp/twilio-oai/spec/json/twilio_conversations_v1.json}
if [ ! -f "$spec" ]; then
  say "installing e2e npm packages for Twilio's OpenAPI description (npm ci in e2e/)"
  (cd e2e && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
test -f "$spec" || { echo "prism-bench: no OpenAPI spec at $spec" >&2; exit 1; }

say "installing Stoplight Prism (npm ci in bench/prism/)"
(cd bench/prism && npm ci --no-audit --no-fund --loglevel=error) >&2
prism=$root/bench/prism/node_modules/.bin/prism

# A free loopback port for Prism (it has no port 0 with a printed address).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
# Logging at warn: Prism logs every request at info, which would only slow it (a conservative ratio).
"$prism" mock --host 127.0.0.1 --port "$port" -v warn "$spec" >"$log" 2>&1 &
prism_pid=$!
cleanup() { kill "$prism_pid" 2>/dev/null || true; wait "$prism_pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT

# Prism's own startup: wait (at most 60 s) until it answers.
url="http://127.0.0.1:$port"
for _ in $(seq 1 600); do
  if curl -s -o /dev/null -u "ACx:secret" "$url/v1/Conversations?PageSize=50"; then break; fi
  if ! kill -0 "$prism_pid" 2>/dev/null; then cat "$log" >&2; echo "prism-bench: Prism exited" >&2; exit 1; fi
  sleep 0.1
done
curl -sf -o /dev/null -u "ACx:secret" "$url/v1/Conversations?PageSize=50" || { cat "$log" >&2; echo "prism-bench: Prism does not answer" >&2; exit 1; }

args=(--connections "$connections" --duration "$duration" --warmup "$warmup" --json)
say "Prism $("$prism" --version 2>/dev/null || echo '?') on $url: bench rest ${args[*]}"
prism_json=$("$bin" bench rest --server "$url" --foreign "${args[@]}")
cleanup
trap - EXIT
say "Rehearsal ($bin): bench rest ${args[*]}"
rehearsal_json=$("$bin" bench rest "${args[@]}")

PRISM_JSON=$prism_json REHEARSAL_JSON=$rehearsal_json JSON=$json python3 - <<'EOF'
import json, os, sys
p = json.loads(os.environ["PRISM_JSON"])
r = json.loads(os.environ["REHEARSAL_JSON"])
pr, rr = p["requests_per_second"], r["requests_per_second"]
ratio = rr / pr if pr > 0 else None
if os.environ["JSON"] == "true":
    print(json.dumps({"bench": "prism", "prism": p, "rehearsal": r, "ratio": ratio}))
else:
    def line(name, j):
        l = j["latency_ms"]
        return f"{name:<10} {j['requests_per_second']:>10.0f} req/s   p50 {l['p50']:.2f} ms   p99 {l['p99']:.2f} ms"
    print(line("Prism", p))
    print(line("Rehearsal", r))
    print(f"Rehearsal/Prism  {ratio:.1f}x" if ratio else "Rehearsal/Prism  n/a")
sys.exit(0 if p["ok"] and r["ok"] else 1)
EOF
