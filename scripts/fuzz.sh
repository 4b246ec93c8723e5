#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo-fuzz, libFuzzer) for SECONDS each (default 30), one
# after the other, single-process, starting from the committed seeds (fuzz/seeds/<target>) plus
# whatever earlier runs found (fuzz/corpus/<target>, not committed). Fails on the first crash,
# leak or timeout, naming the reproducer (fuzz/artifacts/<target>/…); replay one with
#   cargo +nightly fuzz run --fuzz-dir fuzz -s none TARGET fuzz/artifacts/TARGET/crash-…
#
# libFuzzer needs a nightly toolchain. Without one this says so loudly and exits 0: the same
# entry points are covered on stable by the proptest properties that `cargo test` runs
# (mock-server/tests/arbitrary_input.rs, scenarios/tests/arbitrary_input.rs).
#
# Sanitizer: none. The workspace forbids `unsafe`, so AddressSanitizer would find nothing that
# a panic does not already report, at several times the build and run time. Debug assertions
# and overflow checks stay on (cargo-fuzz's default), so an arithmetic overflow is a crash.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
case $seconds in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS per target]" >&2; exit 2 ;;
esac
CARGO_FUZZ_VERSION=0.13.2

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  cat >&2 <<'MSG'

################################################################################
##  NO NIGHTLY TOOLCHAIN: the fuzz targets in fuzz/ were NOT run.             ##
##  (`rustup toolchain install nightly` to run them; the stable proptest      ##
##  properties over the same entry points ran with `cargo test`.)             ##
################################################################################

MSG
  exit 0
fi

if ! cargo +nightly fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
  echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi

fuzz=(cargo +nightly fuzz)
opts=(--fuzz-dir fuzz --sanitizer none)
echo "==> building the fuzz targets"
"${fuzz[@]}" build "${opts[@]}"

for target in $("${fuzz[@]}" list --fuzz-dir fuzz); do
  echo "==> fuzzing $target for ${seconds}s"
  mkdir -p "fuzz/corpus/$target"
  # -timeout: one input taking longer is a hang; -rss_limit_mb: one using more is a leak or a
  # missing bound. Both count as crashes.
  log="fuzz/logs/$target.log"
  mkdir -p fuzz/logs
  if "${fuzz[@]}" run "${opts[@]}" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
  else
    status=$?
    tail -n 60 "$log" >&2
    echo "!! $target FAILED (exit $status): reproducer under fuzz/artifacts/$target/, log in $log" >&2
    exit 1
  fi
done
echo "==> every fuzz target ran ${seconds}s without a crash"
