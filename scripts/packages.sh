#!/usr/bin/env bash
# Builds the npm and PyPI packages of Rehearsal from one release build of the binary, installs
# each from its built artifact into a fresh project outside the repository, exactly as a user
# would, and runs that project's example suite:
#   - npm: `npm pack` of rehearsal-mock-linux-x64 (the binary) and rehearsal-mock (the API), a copy
#     of packages/npm/example/ installed with `npm ci` from its committed lock plus the two
#     tarballs, then its type check (tsc on the hand-written .d.ts), Vitest suite and Jest test
#     (official SDK: a drop and a token expiry);
#   - PyPI: the wheel built by maturin (pinned, installed from PyPI in a virtualenv under
#     target/packages/), installed into a fresh virtualenv with the example's requirements, then
#     packages/python/example/ under pytest through the wheel's plugin.
# Artifacts stay in target/packages/{npm,python}/. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
MATURIN_VERSION=1.16.0

step() { printf '\n==> packages: %s\n' "$*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/rehearsal-packages.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The suites must use the packaged binaries, never one from the environment.
unset REHEARSAL_BIN

step "release binary (cargo build --release -p rehearsal-cli), shared by both packages"
cargo build --release --locked -p rehearsal-cli
bin="$root/target/release/rehearsal"

step "npm: pack rehearsal-mock-linux-x64 and rehearsal-mock"
rm -rf target/packages/npm
bash packages/npm/pack.sh target/packages/npm "linux-x64=$bin"

step "npm: a fresh project ($work/npm) from packages/npm/example's lock plus the two tarballs"
mkdir "$work/npm"
(cd packages/npm/example && tar --exclude=node_modules -cf - .) | (cd "$work/npm" && tar -xf -)
(
  cd "$work/npm"
  npm ci --no-audit --no-fund --loglevel=error
  npm install --no-save --no-audit --no-fund --loglevel=error \
    "$root"/target/packages/npm/rehearsal-mock-linux-x64-*.tgz "$root"/target/packages/npm/rehearsal-mock-[0-9]*.tgz
  # The binary is the one the platform package carries.
  resolved=$(node --input-type=module -e "import { binaryPath } from 'rehearsal-mock'; console.log(binaryPath())")
  case "$resolved" in
    "$work/npm/node_modules/rehearsal-mock-linux-x64/bin/rehearsal") ;;
    *) echo "rehearsal-mock resolved its binary to $resolved, not the platform package's" >&2; exit 1 ;;
  esac
  npx rehearsal --version
  npx tsc -p tsconfig.json
  npx vitest run
  node --experimental-vm-modules node_modules/jest/bin/jest.js
)

step "PyPI: the wheel (maturin $MATURIN_VERSION, bindings = \"bin\")"
maturin_venv=target/packages/maturin-venv
if ! "$maturin_venv/bin/maturin" --version 2>/dev/null | grep -qx "maturin $MATURIN_VERSION"; then
  rm -rf "$maturin_venv"
  python3 -m venv "$maturin_venv"
  "$maturin_venv/bin/pip" install --quiet --disable-pip-version-check "maturin==$MATURIN_VERSION"
fi
rm -rf target/packages/python
# maturin reads packages/python/pyproject.toml from the working directory; its cargo build is the
# one above (same profile and target directory), so it only assembles the wheel.
(cd packages/python && "$root/$maturin_venv/bin/maturin" build --release --locked --out "$root/target/packages/python")
wheel=$(ls target/packages/python/rehearsal_mock-*.whl)

step "PyPI: a fresh virtualenv ($work/venv) with the wheel and packages/python/example's requirements"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check -r packages/python/example/requirements.txt "$wheel[twilio]"
# The module and the binary the plugin uses are the wheel's, installed in the virtualenv.
found=$(cd "$work" && "$work/venv/bin/python" -c 'import rehearsal_mock; print(rehearsal_mock.__file__, rehearsal_mock.find_rehearsal_bin())')
case "$found" in
  "$work/venv/lib/"*"/site-packages/rehearsal_mock/__init__.py $work/venv/bin/rehearsal") ;;
  *) echo "rehearsal_mock and its binary resolved to $found, not the virtualenv's" >&2; exit 1 ;;
esac
"$work/venv/bin/rehearsal" --version
mkdir "$work/python"
cp packages/python/example/*.py packages/python/example/pytest.ini "$work/python/"
(cd "$work/python" && "$work/venv/bin/python" -m pytest -q)
