#!/usr/bin/env bash
# CI for the Effect 4 line (v4/), run by .ci/run after the Effect 3 line: Node 22 (installed from the npm registry
# if the machine lacks it), its own npm ci, the port's sameness checks (v4 sources = Effect 3 sources + patches,
# v4/package.json = the root's + the Effect 4 fields), type-check and build, the install proved by a consumer, the
# same suites as the Effect 3 line, and the two lines' test titles compared.
# Usage: bash .ci/v4.sh <dir holding the Effect 3 line's vitest JSON reports (v3-*.json)>
set -euo pipefail
cd "$(dirname "$0")/.."
reports="$(cd "$1" && pwd)"
node22_bin="$(bash .ci/node22.sh)"
export PATH="$node22_bin:$PATH"
echo "node $(node --version), npm $(npm --version)"
export npm_config_nodedir="$(dirname "$node22_bin")"
test -e "$npm_config_nodedir/include/node/node.h"

cd v4
echo "== v4: npm ci"
npm ci --no-audit --no-fund
node -e 'new (require("better-sqlite3"))(":memory:").close()' && echo "better-sqlite3 built for Node $(node --version)"

echo "== v4: the port's checks, type-check, build"
npm run check
npm run build

echo "== v4: the install, as a new user on Effect 4 does it (and a canary against effect@latest)"
bash ../.ci/consumer-v4.sh

echo "== a rolling deploy: the two lines' servers on one table, requests alternating between them"
(cd .. && bash .ci/rolling-deploy.sh)

echo "== v4: tests"
npx vitest run --reporter=default --reporter=json --outputFile.json="$reports/v4-quick.json"
npx vitest run --config vitest.backends.config.ts --reporter=default --reporter=json --outputFile.json="$reports/v4-backends.json"
npx vitest run --config vitest.faults.config.ts --reporter=default --reporter=json --outputFile.json="$reports/v4-faults.json"
npx vitest run --config vitest.browser.config.ts --reporter=default --reporter=json --outputFile.json="$reports/v4-browser.json"

echo "== both lines ran the same tests"
npx tsx port/titles.ts "$reports" "$reports"
