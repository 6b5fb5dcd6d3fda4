/**
 * `npm run bench`: store level, HTTP level, Redis and scale, side by side in one run, against DATABASE_URL (default the
 * local server). With no server answering, it falls back to the embedded engine and says so: numbers from the two
 * must not be compared. Results go to bench/results/*.json with the machine's description. The SQLite suite
 * (`npm run bench -- sqlite`) needs no server, and writes its results only with `--write`.
 */
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import pg from "pg"
import { databaseUrl, describeMachine, writeResult } from "./lib/machine.js"

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
/** The SQLite suite writes its results only when asked (`--write`); it needs no PostgreSQL. */
const writeSqlite = process.argv.includes("--write")
const withPostgres = ["store", "hot", "http", "scale"].some(wanted)

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
const previous = join(import.meta.dirname, "results", "summary.json")
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
  const sqlite = await runSqliteBench()
  if (writeSqlite) {
    summary.sqlite = sqlite
    writeResult("sqlite", { machine, ...sqlite })
  }
}
if (withPostgres || writeSqlite) {
  console.log(`\nresults written to ${writeResult("summary", summary).replace(/summary\.json$/, "")}`)
}
await embedded?.stop()
