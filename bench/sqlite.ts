/**
 * SQLite, store level, side by side in one process: effect-session's SqliteSessionStore, and better-sqlite3 alone
 * running the same prepared statements (the same transaction for `set`, the same read and compare-and-set for
 * `modify`): the floor of overhead. The memory store shows what the store's own rules cost without any storage.
 * Tables pre-filled with live sessions, in files of a temporary directory; WAL, `synchronous = NORMAL` for both.
 * better-sqlite3 alone keeps SQLite's default checkpoints (every 1000 pages, in the committing call); the store
 * checkpoints on a thread of its own.
 *
 *   npx tsx bench/sqlite.ts [--write]   (BENCH_SECONDS per cell, default 2; BENCH_ROUNDS, default 3; BENCH_ROWS, default 100000)
 */
import Database from "better-sqlite3"
import { Effect, type Scope } from "effect"
import { createHash } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { schema, statements } from "../dist/internal/sqliteStatements.js"
import { MemorySessionStore, SessionStore, SqliteSessionStore } from "../dist/index.js"
import { keyOf, missingKey, sampleValue } from "./lib/keys.js"
import { printTable } from "./lib/machine.js"
import { interleaved, measureEffect, measurePromise, type Stats } from "./lib/measure.js"

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const ROWS = Number(process.env.BENCH_ROWS ?? 100_000)
const CONCURRENCY = [1, 16]
const OPS = ["get (hit)", "get (miss)", "set", "generate", "modify"] as const
type Op = typeof OPS[number]
const WEEK = 7 * 24 * 3600 * 1000
const TABLES = { store: "bench_store", raw: "bench_raw" } as const

const randomRow = () => 1 + Math.floor(Math.random() * ROWS)
const hash = (key: string) => createHash("sha256").update(key).digest()

type Runner = (op: Op, concurrency: number) => Promise<Stats>

/** Creates and fills both tables with the same sessions, through the store's own DDL. */
const prepare = (filename: string) => {
  const db = new Database(filename)
  db.pragma("journal_mode = WAL")
  for (const table of Object.values(TABLES)) {
    const q = schema(`"${table}"`, table)
    db.exec(q.createTable)
    for (const [, ddl] of q.indexes) db.exec(ddl)
    const insert = db.prepare(statements(`"${table}"`).insert)
    const now = Date.now()
    db.transaction(() => {
      for (let n = 1; n <= ROWS; n++) {
        const id = hash(keyOf(n))
        insert.run(id, id, sampleValue(n), now + WEEK, now, now, null, null, null)
      }
    })()
  }
  db.pragma("wal_checkpoint(TRUNCATE)")
  db.close()
}

/** The operations through a store (SQLite or memory), run by fibers as an Effect app runs them. */
const storeRunner = (make: Effect.Effect<SessionStore.Service, unknown, Scope.Scope>, fill: boolean): Runner =>
  (op, concurrency) =>
    Effect.gen(function*() {
      const store = yield* make
      if (fill) yield* Effect.forEach(Array.from({ length: 1000 }, (_, i) => i + 1), (n) => store.set(keyOf(n), sampleValue(n)))
      const rows = fill ? 1000 : ROWS
      const row = () => keyOf(1 + Math.floor(Math.random() * rows))
      const ops: Record<Op, (i: number) => Effect.Effect<unknown, unknown>> = {
        "get (hit)": () => store.get(row()),
        "get (miss)": () => Effect.either(store.get(missingKey())),
        set: (i) => store.set(row(), sampleValue(i)),
        generate: (i) => store.generate({ value: sampleValue(i) }),
        modify: (i) => store.modify(row(), () => sampleValue(i))
      }
      return yield* measureEffect(concurrency, SECONDS, ops[op])
    }).pipe(Effect.scoped, Effect.runPromise)

/** better-sqlite3 alone: the store's statements, prepared once, called directly; and how to close it. */
const rawRunner = (filename: string): [Runner, () => void] => {
  const db = new Database(filename, { timeout: 0 })
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = NORMAL")
  const q = statements(`"${TABLES.raw}"`)
  const s = Object.fromEntries(Object.entries(q).map(([name, sql]) => [name, db.prepare(sql)])) as Record<keyof typeof q, Database.Statement>
  const upsert = db.transaction((id: Buffer, value: string, now: number) =>
    s.upsert.run(id, id, value, now + WEEK, now, now).changes > 0 ? "written" : s.state.get(id))
  const find = (key: string) => s.find.get(hash(key)) as { version: number } | undefined
  const ops: Record<Op, (i: number) => unknown> = {
    "get (hit)": () => find(keyOf(randomRow())),
    "get (miss)": () => find(missingKey()),
    set: (i) => upsert.immediate(hash(keyOf(randomRow())), sampleValue(i), Date.now()),
    generate: (i) => {
      const id = hash(missingKey())
      const now = Date.now()
      return s.insert.run(id, id, sampleValue(i), now + WEEK, now, now, null, null, null)
    },
    modify: (i) => {
      const id = hash(keyOf(randomRow()))
      const { version } = s.find.get(id) as { version: number }
      const now = Date.now()
      return s.compareAndSet.get(sampleValue(i), null, now, id, version, now)
    }
  }
  return [(op, concurrency) => measurePromise(concurrency, SECONDS, async (i) => ops[op](i)), () => db.close()]
}

export const runSqliteBench = async () => {
  console.log(`\n## SQLite, store level: ${ROWS} live sessions per table, ${ROUNDS} interleaved rounds of ${SECONDS}s per cell\n`)
  const directory = mkdtempSync(join(tmpdir(), "effect-session-bench-"))
  try {
    const filename = join(directory, "sessions.db")
    prepare(filename)
    const sqlite = SqliteSessionStore.make({ filename, tableName: TABLES.store, cleanupInterval: 0 })
    const memory = SessionStore.make(MemorySessionStore.backend(), { cleanupInterval: 0 })
    const [raw, closeRaw] = rawRunner(filename)
    const runners: Array<[string, Runner]> = [
      ["effect-session SQLite", storeRunner(sqlite, false)],
      ["better-sqlite3 alone", raw],
      ["effect-session memory", storeRunner(memory, true)]
    ]
    const results: Array<{ op: Op; concurrency: number; impl: string } & Stats> = []
    for (const concurrency of CONCURRENCY) {
      for (const op of OPS) {
        const stats = await interleaved(ROUNDS, runners.map(([impl, run]) => [impl, () => run(op, concurrency)] as const))
        for (const [impl, s] of stats) results.push({ op, concurrency, impl, ...s, latencies: [] })
      }
    }
    const find = (op: Op, c: number, impl: string) => results.find((r) => r.op === op && r.concurrency === c && r.impl === impl)!
    const table = results.filter((r) => r.impl === "effect-session SQLite").map((r) => {
      const raw = find(r.op, r.concurrency, "better-sqlite3 alone")
      const memory = find(r.op, r.concurrency, "effect-session memory")
      return {
        op: r.op,
        conc: r.concurrency,
        "store ops/s": Math.round(r.opsPerSec),
        "p50 ms": r.p50Ms,
        "p99 ms": r.p99Ms,
        "better-sqlite3 ops/s": Math.round(raw.opsPerSec),
        "memory store ops/s": Math.round(memory.opsPerSec),
        "store / better-sqlite3": r.opsPerSec / raw.opsPerSec,
        "store / memory store": r.opsPerSec / memory.opsPerSec
      }
    })
    closeRaw()
    printTable(table)
    return { rows: ROWS, seconds: SECONDS, rounds: ROUNDS, results, table }
  } finally {
    rmSync(directory, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { describeMachine, writeResult } = await import("./lib/machine.js")
  const result = await runSqliteBench()
  if (process.argv.includes("--write")) {
    console.log(`\nwritten to ${writeResult("sqlite", { machine: await describeMachine(false), ...result })}`)
  }
}
