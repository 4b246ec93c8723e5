#!/usr/bin/env bash
# Install one release of the official @twilio/conversations SDK for the reference adapter, so that
# `node adapter.mjs --sdk VERSION` can load it:
#
#   bash adapters/twilio-conversations-js/install-sdk.sh 2.6.0
#
# sdk/VERSION/ is a tiny private package that depends on exactly that release. When it exists
# (3.0.1, 2.7.0, 2.6.0 and 2.0.0 are committed with their package-lock.json, so every run
# installs the same dependency tree) this runs `npm ci` there. For any other version it creates
# the folder and runs an exact-pinned `npm install`, writing a package-lock.json you can commit
# to grade the same tree again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${1:-}
if [ -z "$version" ] || [ $# -ne 1 ]; then
  echo "usage: $0 VERSION   (e.g. 2.6.0; see https://www.npmjs.com/package/@twilio/conversations?activeTab=versions)" >&2
  exit 2
fi
# A version, not a range or a tag: the folder name and the pin must be the exact release.
if ! [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "$0: \"$version\" is not an exact version such as 2.6.0 or 2.4.0-rc.0" >&2
  exit 2
fi
dir="$here/sdk/$version"
if [ -f "$dir/package.json" ] && [ -f "$dir/package-lock.json" ]; then
  cd "$dir"
  npm ci --no-audit --no-fund
else
  mkdir -p "$dir"
  cd "$dir"
  cat >package.json <<JSON
{
  "name": "rehearsal-sdk-twilio-conversations-$version",
  "version": "0.0.0",
  "private": true,
  "description": "@twilio/conversations $version for the Rehearsal reference adapter (node adapter.mjs --sdk $version)",
  "dependencies": {
    "@twilio/conversations": "$version"
  }
}
JSON
  npm install --no-audit --no-fund --save-exact "@twilio/conversations@$version"
fi
installed=$(node -p "require('./node_modules/@twilio/conversations/package.json').version")
if [ "$installed" != "$version" ]; then
  echo "$0: installed @twilio/conversations $installed, not $version" >&2
  exit 1
fi
echo "@twilio/conversations $installed installed in $dir"
echo "run: rehearsal run --client \"node adapters/twilio-conversations-js/adapter.mjs --sdk $version\""
