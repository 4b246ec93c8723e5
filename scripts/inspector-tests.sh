#!/usr/bin/env bash
# The inspector in a real browser: installs headless Chromium (the Debian package `chromium`,
# /usr/bin/chromium) when it is missing, the pinned playwright-core of e2e/browser/ (npm ci),
# and runs e2e/browser/ against the real binary ($REHEARSAL_BIN, default target/debug/rehearsal;
# the official SDK comes from e2e/node_modules, which scripts/test.sh installs first).
# Screenshots land in target/inspector-screenshots/ (kept as CI artifacts).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if ! [ -x /usr/bin/chromium ]; then
  echo "==> installing chromium (apt-get)"
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then as_root=(sudo -n); fi
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
    || { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }
fi
/usr/bin/chromium --version

if ! [ -d e2e/node_modules/@twilio/conversations ]; then
  (cd e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
(cd e2e/browser && npm ci --no-audit --no-fund --loglevel=error)

export REHEARSAL_BIN="${REHEARSAL_BIN:-$root/target/debug/rehearsal}"
test -x "$REHEARSAL_BIN" || cargo build -p rehearsal-cli --locked
mkdir -p target/inspector-screenshots
(cd e2e/browser && npm test)
echo "screenshots: target/inspector-screenshots/"
