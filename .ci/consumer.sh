#!/usr/bin/env bash
# Proves the install as a new user would do it: packs the library, makes a throwaway npm project, runs the README's
# install command verbatim (the tarball in place of the name), checks that one copy of effect is installed,
# type-checks a strict program (NodeNext, no skipLibCheck) and runs it against the PostgreSQL server with PGlite
# and the optional engines (better-sqlite3, ioredis) absent; then installs each as the README says and runs its
# entry too (Redis on 127.0.0.1:6379).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/test}"
export DATABASE_URL

tarball="$(cd "$repo" && npm pack --silent | tail -n 1)"
work="$(mktemp -d)"
trap 'rm -rf "$work" "$repo/$tarball"' EXIT
cp "$repo"/.ci/consumer/* "$work"/
cd "$work"
npm init -y >/dev/null
npm pkg set type=module >/dev/null

readme="$repo/README.md"
source "$repo/.ci/consumer-common.sh"
install="$(readme_command 'npm install effect-session@^0.3 ')"
echo "README: $install"
eval "${install/effect-session@^0.3 /$repo/$tarball } --no-audit --no-fund"
# Tools of the consumer's own, not the library's.
npm install -D --no-audit --no-fund typescript@~5.9.3 @types/node@~20.19.43 >/dev/null

one_effect 3
test ! -e node_modules/@electric-sql/pglite
test ! -e node_modules/better-sqlite3
test ! -e node_modules/ioredis

npx tsc -p tsconfig.json
node out/main.js

# Every TypeScript block of the README, type-checked as a consumer would write it (after the README's
# OpenTelemetry install, which its observability example needs).
telemetry="$(readme_command 'npm install @effect/opentelemetry')"
echo "README: $telemetry"
eval "$telemetry --no-audit --no-fund" >/dev/null
one_effect 3
testing="$(readme_command 'npm install -D @effect/vitest')"
echo "README: $testing"
eval "$testing --no-audit --no-fund" >/dev/null
one_effect 3
check_readme_blocks

# Older module resolution (node10) finds the types through `types` and `typesVersions`.
cat > node10.ts <<'TS'
import type { SessionStore } from "effect-session"
import type { SessionConflict } from "effect-session/SessionMiddleware"
export type Checked = [SessionStore.Service, SessionConflict]
TS
printf '{ "compilerOptions": { "module": "commonjs", "moduleResolution": "node10", "strict": true, "noEmit": true, "skipLibCheck": true, "lib": ["ES2022", "DOM"], "types": ["node"] }, "files": ["node10.ts"] }\n' > tsconfig.node10.json
npx tsc -p tsconfig.node10.json
echo "node10 resolution: types found"

# The Redis entry: without ioredis it loads and fails with a typed error; after the README's install it works.
npx tsc -p tsconfig.redis.json
node out/redis.js absent
redis="$(readme_command 'npm install ioredis')"
echo "README: $redis"
eval "$redis --no-audit --no-fund"
npm ls ioredis >/dev/null
node out/redis.js

embedded="$(readme_command 'npm install @electric-sql/pglite')"
echo "README: $embedded"
eval "$embedded --no-audit --no-fund"
npx tsc -p tsconfig.embedded.json
node out/embedded.js

sqlite="$(readme_command 'npm pkg set allowScripts.better-sqlite3')"
echo "README: $sqlite"
eval "$sqlite --no-audit --no-fund"
test -e node_modules/better-sqlite3/build/Release/better_sqlite3.node
npx tsc -p tsconfig.sqlite.json
node out/sqlite.js

# TypeScript 7 (what `npm i -D typescript` installs now): the strict consumer and every README block again.
npm install -D --no-audit --no-fund typescript@~7.0.2 >/dev/null
echo "TypeScript $(npx tsc --version)"
npx tsc -p tsconfig.json --noEmit
# The README blocks with skipLibCheck: TypeScript 7 reports vitest 3.2's own typings (a chai duplicate), not ours,
# which the strict consumer above has just checked.
printf '{ "extends": "./tsconfig.readme.json", "compilerOptions": { "skipLibCheck": true } }\n' > tsconfig.readme7.json
npx tsc -p tsconfig.readme7.json
echo "TypeScript 7: consumer and README blocks type-check"
