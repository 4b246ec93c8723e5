#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need (the npm packages of
# e2e/ — the official SDK, the twilio helper library and Twilio's OpenAPI description —, the
# reference adapter's npm packages, and the twilio PyPI helper library in a virtualenv), checks
# formatting and lints, runs the Rust tests, the Node suites and the Python suite against the
# real `rehearsal` binary, then the conformance runs: the compatibility matrix (the whole scenario
# library against each client; every client must pass, and README's compatibility table must be
# the one the matrix produced), the mutant check (every planted bug must be caught) and a
# determinism check (two more runs must give every scenario the same verdict).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

step "installing e2e npm packages (npm ci)"
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)

step "installing the reference adapter's npm packages (npm ci)"
(cd adapters/twilio-conversations-js && npm ci --no-audit --no-fund --loglevel=error)

step "installing the twilio PyPI helper library (venv in e2e/python/.venv)"
python3 -m venv e2e/python/.venv
e2e/python/.venv/bin/pip install --quiet --disable-pip-version-check -r e2e/python/requirements.txt

step "formatting and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Rust tests (also builds target/debug/rehearsal for the suites below)"
CI=${CI:-true} cargo test --workspace --locked

step "fuzz targets (cargo-fuzz, 15 s each; said loudly and skipped without a nightly toolchain)"
bash scripts/fuzz.sh 15

# `cargo test` built the Rust adapter (its integration tests run the binary); a separate
# `cargo build -p` would unify features differently and compile dependencies again.
test -x target/debug/rehearsal-adapter-rust

step "Node suites (official SDK and twilio helper library)"
export REHEARSAL_BIN="$root/target/debug/rehearsal"
(cd e2e && npm test)

step "inspector in headless Chromium (installs chromium and playwright-core)"; bash scripts/inspector-tests.sh
step "benchmark scripts, smoke mode (Prism from npm vs serve; fan-out chart)"; bash scripts/bench-smoke.sh

step "Python suite (twilio helper library)"
e2e/python/.venv/bin/python -m pytest e2e/python -q

step "npm and PyPI packages (release build, installed from their artifacts into fresh projects)"
bash scripts/packages.sh

step "container image (built and run when a Docker daemon answers; said loudly when none does)"; bash scripts/container.sh

# The compatibility matrix: the whole library against every client, one client after the other
# (each with the whole --jobs and a server of its own), 6 scenarios at once on CI's 2 cores: they
# mostly wait on the SDK's timers (README "How long it takes"). Per client: a JUnit, JSON and HTML
# run report (target/rehearsal/NAME.*); for all: the matrix (JSON, HTML, Markdown) and a badge per
# client. Exit 0 only if every client passes (the highest of the clients' exit codes).
step "installing the SDK releases the matrix plays (adapters/twilio-conversations-js/sdk/VERSION)"
for v in 3.0.1 2.7.0 2.6.0 2.0.0; do
  bash adapters/twilio-conversations-js/install-sdk.sh "$v"
done

js="node adapters/twilio-conversations-js/adapter.mjs"
step "conformance: the compatibility matrix, the whole scenario library against each client (must exit 0)"
"$REHEARSAL_BIN" run --jobs 6 --no-progress \
  --client "sdk-3.0.1=$js --sdk 3.0.1" \
  --client "sdk-2.7.0=$js --sdk 2.7.0" \
  --client "sdk-2.6.0=$js --sdk 2.6.0" \
  --client "sdk-2.0.0=$js --sdk 2.0.0" \
  --deviations "sdk-2.0.0=adapters/twilio-conversations-js/sdk/2.0.0/deviations.toml" \
  --client "rust=$root/target/debug/rehearsal-adapter-rust" \
  --report "junit=target/rehearsal/{client}.xml" --report "json=target/rehearsal/{client}.json" \
  --report "html=target/rehearsal/{client}.html" \
  --report matrix-json=target/rehearsal/matrix.json --report matrix-html=target/rehearsal/matrix.html \
  --report matrix-md=target/rehearsal/matrix.md --report badges=target/rehearsal/badges

step "conformance: README's compatibility table is the one this run produced"
"$REHEARSAL_BIN" compat --matrix target/rehearsal/matrix.json --readme README.md --check

step "conformance: every mutant of the reference adapter is caught"
REHEARSAL_BIN="$REHEARSAL_BIN" REHEARSAL_BASELINE=target/rehearsal/sdk-3.0.1.json JOBS=6 \
  bash harness/check-mutants.sh

step "conformance: the same verdicts again (2 more runs compared with the one above)"
REHEARSAL_BIN="$REHEARSAL_BIN" REHEARSAL_BASELINE=target/rehearsal/sdk-3.0.1.json JOBS=6 \
  REHEARSAL_DETERMINISM_REPORTS=target/rehearsal/determinism bash harness/check-determinism.sh 3
