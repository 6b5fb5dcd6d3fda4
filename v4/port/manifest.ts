/**
 * v4/package.json from the Effect 3 line's package.json: the package's identity, entry points, files and runtime
 * dependencies are the same (written once, at the root); what differs (version, Node, the Effect 4 peers, the dev
 * tools, scripts) is below.
 *
 *   tsx port/manifest.ts           write v4/package.json
 *   tsx port/manifest.ts --check   fail if v4/package.json differs from what the root package.json gives (CI)
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = JSON.parse(fs.readFileSync(path.join(here, "../../package.json"), "utf8")) as Record<string, unknown>
const target = path.join(here, "../package.json")

/** Taken from the root package.json as they are. */
const shared = [
  "name", "type", "license", "repository", "homepage", "bugs", "keywords", "sideEffects", "main", "types", "exports",
  "typesVersions", "files", "dependencies", "allowScripts"
] as const

/** The Effect 4 line's own fields. */
const own = {
  version: "1.0.0",
  description: "Server-side HTTP sessions for Effect 4: a SessionStore service on PostgreSQL, Redis, SQLite, memory or embedded Postgres, with typed errors, atomic key rotation, deadlines and lost-update-free writes.",
  engines: { node: ">=22.19" },
  scripts: {
    build: "tsc -p tsconfig.build.json",
    // The one LICENSE and CHANGELOG of the repository, in the package while it is packed.
    prepack: "cp ../LICENSE ../CHANGELOG.md . && npm run build",
    postpack: "rm -f LICENSE CHANGELOG.md",
    check: "tsx port/port.ts --check && tsx port/manifest.ts --check && tsc -p tsconfig.json --noEmit",
    test: "vitest run",
    "test:backends": "vitest run --config vitest.backends.config.ts",
    "test:faults": "vitest run --config vitest.faults.config.ts",
    "test:browser": "vitest run --config vitest.browser.config.ts",
    start: "tsx examples/demo/main.ts",
    walkthrough: "tsx examples/store-walkthrough.ts"
  },
  peerDependencies: {
    "@effect/sql-pg": "^4.0.5",
    "@electric-sql/pglite": "^0.5.14",
    "@electric-sql/pglite-socket": "^0.2.17",
    effect: "^4.1.0",
    "better-sqlite3": "^12.0.0",
    ioredis: "^5.9.3"
  },
  peerDependenciesMeta: root["peerDependenciesMeta"],
  devDependencies: {
    "@effect/platform-node": "4.1.0",
    "@effect/sql-pg": "4.0.5",
    "@effect/vitest": "4.0.5",
    "@electric-sql/pglite": "0.5.14",
    "@electric-sql/pglite-socket": "~0.2.17",
    "@types/better-sqlite3": "~7.6.13",
    "@types/node": "~22.19.0",
    "@types/pg": "~8.23.1",
    "better-sqlite3": "~12.9.0",
    effect: "4.1.0",
    ioredis: "~5.9.3",
    "playwright-core": "~1.65.1",
    tsx: "~4.23.15",
    typescript: "~5.9.3",
    // vitest's peer, pinned: vite 8.4.0 lists an optional dependency the registry does not have
    // (napi-windows-process-start-time), which leaves every lock file out of sync for `npm ci`.
    vite: "8.3.8",
    vitest: "~5.1.2"
  }
}

const manifest: Record<string, unknown> = {}
for (const key of ["name", "version", "description", "type", "license", "repository", "homepage", "bugs", "keywords",
  "sideEffects", "engines", "main", "types", "exports", "typesVersions", "files", "scripts", "dependencies",
  "peerDependencies", "peerDependenciesMeta", "devDependencies", "allowScripts"]) {
  const value = (shared as ReadonlyArray<string>).includes(key) ? root[key] : (own as Record<string, unknown>)[key]
  if (value !== undefined) manifest[key] = key === "repository" ? { ...(value as object), directory: "v4" } : value
}
const text = JSON.stringify(manifest, null, 2) + "\n"

if (process.argv[2] === "--check") {
  if (fs.readFileSync(target, "utf8") !== text) {
    console.error("v4/package.json differs from what the root package.json gives: run tsx port/manifest.ts")
    process.exit(1)
  }
} else fs.writeFileSync(target, text)
