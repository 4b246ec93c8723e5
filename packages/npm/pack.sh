#!/usr/bin/env bash
# Packs the npm packages: one per-platform package per OS-CPU=BINARY pair (`rehearsal-mock-OS-CPU`,
# the binary in bin/, `os`/`cpu` set so npm installs only the matching one), and the main package
# `rehearsal-mock` whose optionalDependencies name exactly the platforms packed. Tarballs go to
# OUT_DIR; nothing is published.
#
#   packages/npm/pack.sh OUT_DIR linux-x64=target/release/rehearsal [darwin-arm64=path/to/rehearsal …]
#
# OS and CPU are Node's names (process.platform, process.arch): linux, darwin, win32; x64, arm64.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: pack.sh OUT_DIR OS-CPU=BINARY...}
shift
[ $# -gt 0 ] || { echo "pack.sh: name at least one OS-CPU=BINARY" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

# One version everywhere: the workspace's.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
main_version=$(node -p "require('$here/rehearsal-mock/package.json').version")
if [ "$version" != "$main_version" ]; then
  echo "pack.sh: rehearsal-mock/package.json has version $main_version, Cargo.toml $version" >&2
  exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
platforms=()
for pair in "$@"; do
  key=${pair%%=*}
  bin=${pair#*=}
  os=${key%-*}
  cpu=${key#*-}
  [ -x "$bin" ] || { echo "pack.sh: $bin (for $key) is not an executable" >&2; exit 1; }
  name="rehearsal-mock-$key"
  exe=rehearsal
  [ "$os" = win32 ] && exe=rehearsal.exe
  dir="$stage/$name"
  mkdir -p "$dir/bin"
  cp "$bin" "$dir/bin/$exe"
  chmod 755 "$dir/bin/$exe"
  NAME=$name VERSION=$version OS=$os CPU=$cpu node -e '
    const { NAME, VERSION, OS, CPU } = process.env;
    const pkg = {
      name: NAME,
      version: VERSION,
      description: `The rehearsal binary for ${OS}-${CPU} (installed by rehearsal-mock as an optional dependency)`,
      license: "MIT OR Apache-2.0",
      os: [OS],
      cpu: [CPU],
      files: ["bin/"],
      preferUnplugged: true,
    };
    require("fs").writeFileSync(process.argv[1], JSON.stringify(pkg, null, 2) + "\n");
  ' "$dir/package.json"
  printf '# %s\n\nThe `rehearsal` binary for %s-%s. Install `rehearsal-mock`, which depends on it.\n' \
    "$name" "$os" "$cpu" >"$dir/README.md"
  (cd "$dir" && npm pack --silent --pack-destination "$out" >/dev/null)
  platforms+=("$name")
done

# The main package, its optionalDependencies set to the platforms packed here.
cp -r "$here/rehearsal-mock" "$stage/main"
rm -rf "$stage/main/node_modules"
PLATFORMS="${platforms[*]}" VERSION=$version node -e '
  const fs = require("fs");
  const file = process.argv[1];
  const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
  pkg.optionalDependencies = Object.fromEntries(process.env.PLATFORMS.split(" ").map((n) => [n, process.env.VERSION]));
  fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + "\n");
' "$stage/main/package.json"
(cd "$stage/main" && npm pack --silent --pack-destination "$out" >/dev/null)
ls "$out"/*.tgz
