#!/usr/bin/env bash
# Proves the Effect 4 line's install as a new user would do it (run on Node 22, from v4/ or by .ci/v4.sh): packs
# v4/, makes a throwaway npm project, runs v4/README.md's install command verbatim (the tarball in place of the
# name), checks that exactly one effect is installed and that it is Effect 4, type-checks a strict program (NodeNext,
# no skipLibCheck) and runs it against the PostgreSQL server with PGlite and better-sqlite3 absent, then the embedded
# engine after the README's install. Last, a canary: the same program against effect@latest and its packages.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/test}"
export DATABASE_URL
readme="$repo/v4/README.md"

tarball="$(cd "$repo/v4" && npm pack --silent | tail -n 1)"
work="$(mktemp -d)"
trap 'rm -rf "$work" "$repo/v4/$tarball"' EXIT
cp "$repo"/.ci/consumer-v4/* "$work"/
cd "$work"
npm init -y >/dev/null
npm pkg set type=module >/dev/null

source "$repo/.ci/consumer-common.sh"
install="$(readme_command 'npm install effect-session ')"
echo "README: $install"
eval "${install/effect-session /$repo/v4/$tarball } --no-audit --no-fund"
npm install -D --no-audit --no-fund typescript@~5.9.3 @types/node@~22.19.0 >/dev/null

one_effect 4
test ! -e node_modules/@electric-sql/pglite
test ! -e node_modules/better-sqlite3
test ! -e node_modules/ioredis

npx tsc -p tsconfig.json
node out/main.js

# Every TypeScript block of v4/README.md, type-checked as a consumer would write it (after its test-tools install).
testing="$(readme_command 'npm install -D @effect/vitest')"
echo "README: $testing"
eval "$testing --no-audit --no-fund" >/dev/null
one_effect 4
check_readme_blocks

embedded="$(readme_command 'npm install @electric-sql/pglite')"
echo "README: $embedded"
eval "$embedded --no-audit --no-fund"
npx tsc -p tsconfig.embedded.json
node out/embedded.js

# The canary tells of a release of Effect that breaks this line before users meet it; it does not fail the run
# (the pinned install above is what this line promises), it says so loudly.
canary() {
  npm install --no-audit --no-fund effect@latest @effect/platform-node@latest @effect/sql-pg@latest >/dev/null
  one_effect 4
  rm -rf out
  npx tsc -p tsconfig.json
  node out/main.js
}
echo "== canary: effect@$(npm view effect@latest version) and its packages at their latest"
if (set -e; canary); then echo "canary OK"; else echo "CANARY FAILED: effect@latest breaks the Effect 4 line (see above)"; fi
