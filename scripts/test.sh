#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need (the npm packages of
# e2e/ — the official SDK, the twilio helper library and Twilio's OpenAPI description — and the
# twilio PyPI helper library in a virtualenv), checks formatting and lints, then runs the Rust
# tests, the Node suites and the Python suite against the real `rehearsal` binary.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

step "installing e2e npm packages (npm ci)"
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)

step "installing the twilio PyPI helper library (venv in e2e/python/.venv)"
python3 -m venv e2e/python/.venv
e2e/python/.venv/bin/pip install --quiet --disable-pip-version-check -r e2e/python/requirements.txt

step "formatting and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Rust tests (also builds target/debug/rehearsal for the suites below)"
CI=${CI:-true} cargo test --workspace --locked

step "Node suites (official SDK and twilio helper library)"
export REHEARSAL_BIN="$root/target/debug/rehearsal"
(cd e2e && npm test)

step "Python suite (twilio helper library)"
e2e/python/.venv/bin/python -m pytest e2e/python -q
