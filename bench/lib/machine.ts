/** The machine and database a benchmark ran on, and where results go. */
import { mkdirSync, writeFileSync } from "node:fs"
import { cpus, freemem, loadavg, totalmem, type } from "node:os"
import { join } from "node:path"
import pg from "pg"

export const databaseUrl = () => process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/test"

/** Whether this run uses the embedded engine (set by bench/run.ts): one shared session, no prepared statement names. */
export const embedded = () => process.env.BENCH_EMBEDDED === "1"

/** The machine, and the PostgreSQL server's settings unless `withPostgres` is false (a run of SQLite alone). */
export const describeMachine = async (withPostgres = true) => {
  const settings = withPostgres ? await postgresSettings() : { rows: [] }
  return {
    date: new Date().toISOString(),
    os: type(),
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    freeMemoryGiB: Math.round(freemem() / 2 ** 30),
    loadAverage: loadavg(),
    node: process.version,
    database: databaseUrl().replace(/:[^:@/]*@/, ":***@"),
    postgres: Object.fromEntries(settings.rows.map((r) => [r.name, r.setting]))
  }
}

const postgresSettings = async () => {
  const client = new pg.Client({ connectionString: databaseUrl() })
  await client.connect()
  const settings = await client.query<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'synchronous_commit', 'fsync', 'shared_buffers', 'max_connections', 'wal_writer_delay')`
  )
  await client.end()
  return settings
}

/**
 * Whether this run replaces the tracked results (`npm run bench -- --write`, or BENCH_WRITE=1). Otherwise results
 * go to `bench/results/<name>.tmp` (ignored by git), so a look at the numbers never overwrites the recorded ones.
 */
export const writing = () => process.argv.includes("--write") || process.env.BENCH_WRITE === "1"

/** Writes `result` as `bench/results/<name>.json` when {@link writing}, else as `<name>.tmp`; returns the file. */
export const writeResult = (name: string, result: unknown) => {
  const dir = join(import.meta.dirname, "..", "results")
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${name}.${writing() ? "json" : "tmp"}`)
  writeFileSync(file, JSON.stringify(result, null, 2) + "\n")
  return file
}

/** Prints rows as an aligned text table. */
export const printTable = (rows: Array<Record<string, string | number>>) => {
  if (rows.length === 0) return
  const columns = Object.keys(rows[0]!)
  const cell = (v: string | number) => typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c] ?? "").length)))
  const line = (values: Array<string>) => values.map((v, i) => v.padEnd(widths[i]!)).join("  ")
  console.log(line(columns))
  console.log(line(widths.map((w) => "-".repeat(w))))
  for (const row of rows) console.log(line(columns.map((c) => cell(row[c] ?? ""))))
}
