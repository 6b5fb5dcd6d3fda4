/**
 * `npm run bench`: store level, HTTP level, Redis and scale, side by side in one run, against DATABASE_URL (default the
 * local server). With no server answering, it falls back to the embedded engine and says so: numbers from the two
 * must not be compared. Results go to bench/results/*.json with the machine's description when asked
 * (`npm run bench -- --write`), else to bench/results/*.tmp (ignored by git). The SQLite and embedded-engine parts
 * (`npm run bench -- sqlite`, `-- embedded`) need no server. `npm run bench -- lines` runs the Effect 3 and Effect 4
 * lines side by side (bench/lines.ts; needs v4/dist).
 */
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import pg from "pg"
import { goals, printGoals } from "./lib/goals.js"
import { databaseUrl, describeMachine, writeResult, writing } from "./lib/machine.js"

const reachable = async (url: string) => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
  try {
    await client.connect()
    await client.end()
    return true
  } catch {
    return false
  }
}

const only = process.argv.slice(2).filter((arg) => !arg.startsWith("--"))
const wanted = (name: string) => only.length === 0 || only.includes(name)
const withPostgres = ["store", "hot", "http", "scale", "lines"].some(wanted)

let embedded: { stop: () => Promise<void> } | undefined
if (withPostgres && !process.env.DATABASE_URL && !(await reachable(databaseUrl()))) {
  const db = await PGlite.create()
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 64 })
  await server.start()
  process.env.DATABASE_URL = `postgres://postgres@${server.getServerConn()}/postgres`
  process.env.BENCH_EMBEDDED = "1"
  process.env.BENCH_SCALE_ROWS ??= "100000"
  embedded = { stop: async () => { await server.stop(); await db.close() } }
  console.log("NOTE: no PostgreSQL server answered, so this run uses the EMBEDDED engine (PGlite, one query at a time).")
  console.log("      Its numbers are not comparable with a server's; set DATABASE_URL for real results.")
}

const machine = {
  ...(await describeMachine(withPostgres)),
  engine: !withPostgres ? "none" : embedded ? "embedded (PGlite)" : "PostgreSQL server"
}
console.log(`machine: ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.cpu}, node ${machine.node}${
  withPostgres ? `, PostgreSQL ${machine.postgres.server_version}` : ""}`)

// A partial run (`npm run bench -- http`) updates its part of the summary and keeps the others.
const previous = join(import.meta.dirname, "results", `summary.${writing() ? "json" : "tmp"}`)
const summary: Record<string, unknown> = {
  ...(only.length > 0 && existsSync(previous) ? JSON.parse(readFileSync(previous, "utf8")) : {}),
  machine
}
if (wanted("store")) {
  const { runStoreBench } = await import("./store.js")
  summary.store = await runStoreBench()
  writeResult("store", { machine, ...(summary.store as object) })
}
if (wanted("hot")) {
  const { runHotBench } = await import("./hot.js")
  summary.hot = await runHotBench()
  writeResult("hot", { machine, ...(summary.hot as object) })
}
if (wanted("http")) {
  const { runHttpBench } = await import("./http.js")
  summary.http = await runHttpBench()
  writeResult("http", { machine, ...(summary.http as object) })
}
if (wanted("lines")) {
  // The Effect 3 and Effect 4 lines side by side (needs v4/dist: asked for by name, it fails without; in a full run it is skipped).
  const { BUILD_V4, runLinesBench, v4Built } = await import("./lines.js")
  if (only.includes("lines") || v4Built()) {
    summary.lines = await runLinesBench()
    writeResult("lines", { machine, ...(summary.lines as object) })
  } else {
    console.log(`\n## The two lines: skipped, the Effect 4 line is not built (${BUILD_V4})`)
  }
}
if (wanted("redis")) {
  const { runRedisBench } = await import("./redis.js")
  summary.redis = await runRedisBench()
  writeResult("redis", { machine, ...(summary.redis as object) })
}
if (wanted("scale")) {
  const { runScaleBench } = await import("./scale.js")
  summary.scale = await runScaleBench()
  writeResult("scale", { machine, ...(summary.scale as object) })
}
if (wanted("sqlite")) {
  const { runSqliteBench } = await import("./sqlite.js")
  summary.sqlite = await runSqliteBench()
  writeResult("sqlite", { machine, ...(summary.sqlite as object) })
}
if (wanted("embedded")) {
  const { runEmbeddedBench } = await import("./embedded.js")
  summary.embedded = await runEmbeddedBench()
  writeResult("embedded", { machine, ...(summary.embedded as object) })
}
if (wanted("store") || wanted("http")) {
  const part = <K extends string>(name: string, key: K) =>
    (summary[name] as Record<K, ReadonlyArray<never>> | undefined)?.[key]
  summary.goals = goals(part("store", "results"), part("http", "results"))
  printGoals(summary.goals as ReturnType<typeof goals>)
}
console.log(`\nresults written to ${writeResult("summary", summary).replace(/summary\.(json|tmp)$/, "*.$1")}`)
await embedded?.stop()
