/**
 * A hot session: 64 concurrent writers incrementing a counter in one session, for BENCH_SECONDS.
 *
 * PostgreSQL itself counts the statements (its transaction counters: each statement here is a transaction of its
 * own), read after the competitor's pool has closed (closing flushes a backend's statistics); the harness's own
 * few statements are subtracted. Every competitor's final counter is compared with the increments it acknowledged.
 *
 * - effect-session, one process: concurrent writes to one key are merged by the store's write queue.
 * - effect-session, two processes: two store instances with pools of their own on the same row, so their writes
 *   conflict and are retried (compare-and-set, jittered backoff).
 * - a compare-and-set retry loop without merging (0.1's design), on raw pg.
 * - connect-pg-simple through express-session's Store API: get then set, not atomic.
 *
 *   npx tsx bench/hot.ts
 */
import { Context, Effect, Layer, Redacted } from "effect"
import { createHash } from "node:crypto"
import { promisify } from "node:util"
import connectPgSimple from "connect-pg-simple"
import session from "express-session"
import pg from "pg"
import { schema, statements } from "../dist/internal/pgStatements.js"
import { PgSessionStore, SessionKey, SessionStore } from "../dist/index.js"
import { databaseUrl, describeMachine, printTable, writeResult } from "./lib/machine.js"
import { measureEffect, measurePromise, type Stats } from "./lib/measure.js"

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2)
const WRITERS = 64
const POOL = 10
const TABLE = "bench_hot"
const CPS_TABLE = "bench_hot_cps"
const KEY = SessionKey.generate()

const hash = (key: string) => createHash("sha256").update(key).digest()
const increment = (n: string) => String(Number(n) + 1)

/**
 * Statements run on the database so far: every statement here runs in a transaction of its own, so committed and
 * rolled-back transactions count them (PostgreSQL's own statistics, flushed when a competitor's connections close).
 */
const statementCount = async (admin: pg.Client) => {
  await new Promise((r) => setTimeout(r, 300))
  const { rows } = await admin.query<{ n: string }>(
    `SELECT (xact_commit + xact_rollback)::text AS n FROM pg_stat_database WHERE datname = current_database()`
  )
  return Number(rows[0]!.n)
}

const resetTable = async (admin: pg.Client) => {
  await admin.query(`DROP TABLE IF EXISTS ${TABLE}`)
  const q = schema(`"${TABLE}"`, TABLE, "full")
  await admin.query(q.createTable)
  for (const [, ddl] of q.indexes) await admin.query(ddl)
  await admin.query(
    `INSERT INTO ${TABLE} (id, value, expires_at, created_at) VALUES ($1, '0', now() + interval '1 day', now())`,
    [hash(KEY)]
  )
}

const counter = async (admin: pg.Client) =>
  Number((await admin.query<{ value: string }>(`SELECT value FROM ${TABLE} WHERE id = $1`, [hash(KEY)])).rows[0]!.value)

interface Result extends Stats {
  readonly competitor: string
  readonly statements: number
  readonly counter: number
}

/** effect-session with `instances` store instances (processes), each with a pool of its own. */
const effectSession = (instances: number) => async (admin: pg.Client): Promise<Omit<Result, "competitor">> => {
  await resetTable(admin)
  const before = await statementCount(admin)
  // The stores are closed when the scope ends, before counting: closing a backend flushes its statistics.
  const stats = await Effect.runPromise(Effect.gen(function*() {
    const stores: Array<SessionStore.Service> = []
    for (let i = 0; i < instances; i++) {
      const context = yield* Layer.build(PgSessionStore.layerPool({
        url: Redacted.make(databaseUrl()),
        tableName: TABLE,
        maxConnections: POOL,
        cleanupInterval: 0
      }))
      stores.push(Context.get(context, SessionStore.SessionStore))
    }
    return yield* measureEffect(WRITERS, SECONDS, (i) => stores[i % instances]!.modify(KEY, increment))
  }).pipe(Effect.scoped))
  const after = await statementCount(admin)
  return { ...stats, statements: after - before - 1, counter: await counter(admin) }
}

/** 0.1's design: read, compare-and-set, retry on conflict; no merging. */
const casLoop = async (admin: pg.Client): Promise<Omit<Result, "competitor">> => {
  await resetTable(admin)
  const before = await statementCount(admin)
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: POOL })
  const q = statements(`"${TABLE}"`, "full")
  const id = hash(KEY)
  const stats = await measurePromise(WRITERS, SECONDS, async () => {
    for (;;) {
      const { rows } = await pool.query<{ value: string; version: string }>({ name: "find", text: q.find, values: [id] })
      const now = Date.now()
      const written = await pool.query({
        name: "cas",
        text: q.compareAndSet,
        values: [id, rows[0]!.version, increment(rows[0]!.value), null, now]
      })
      if (written.rowCount === 1) return
    }
  })
  await pool.end()
  const after = await statementCount(admin)
  return { ...stats, statements: after - before - 1, counter: await counter(admin) }
}

/** connect-pg-simple: get, change, set (what express-session does); last write wins. */
const connectPgSimpleRun = async (admin: pg.Client): Promise<Omit<Result, "competitor">> => {
  await admin.query(`DROP TABLE IF EXISTS ${CPS_TABLE}`)
  await admin.query(`CREATE TABLE ${CPS_TABLE} (sid varchar NOT NULL PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL)`)
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: POOL })
  const PgStore = connectPgSimple(session)
  const store = new PgStore({ pool, tableName: CPS_TABLE, pruneSessionInterval: false })
  const get = promisify(store.get.bind(store)) as (sid: string) => Promise<{ visits: number } | null>
  const set = promisify(store.set.bind(store)) as (sid: string, s: unknown) => Promise<void>
  const cookie = { originalMaxAge: 86_400_000, expires: new Date(Date.now() + 86_400_000).toISOString(), path: "/" }
  await set(KEY, { cookie, visits: 0 })
  const before = await statementCount(admin)
  const stats = await measurePromise(WRITERS, SECONDS, async () => {
    const current = await get(KEY)
    await set(KEY, { cookie, visits: (current?.visits ?? 0) + 1 })
  })
  await pool.end()
  const after = await statementCount(admin)
  const final = (await admin.query<{ sess: { visits: number } }>(`SELECT sess FROM ${CPS_TABLE} WHERE sid = $1`, [KEY])).rows[0]!
  return { ...stats, statements: after - before - 1, counter: final.sess.visits }
}

export const runHotBench = async () => {
  console.log(`\n## A hot session: ${WRITERS} concurrent writers on one session, ${SECONDS}s each, pool ${POOL}\n`)
  const admin = new pg.Client({ connectionString: databaseUrl() })
  await admin.connect()
  const competitors: Array<[string, (admin: pg.Client) => Promise<Omit<Result, "competitor">>]> = [
    ["effect-session, one process", effectSession(1)],
    ["effect-session, two processes", effectSession(2)],
    ["compare-and-set loop, no merging (0.1)", casLoop],
    ["connect-pg-simple (get + set)", connectPgSimpleRun]
  ]
  const results: Array<Result> = []
  for (const [competitor, run] of competitors) results.push({ competitor, ...(await run(admin)), latencies: [] })
  await admin.query(`DROP TABLE IF EXISTS ${TABLE}; DROP TABLE IF EXISTS ${CPS_TABLE}`)
  await admin.end()
  const table = results.map((r) => ({
    competitor: r.competitor,
    "writes/s": Math.round(r.opsPerSec),
    "p50 ms": r.p50Ms,
    "p99 ms": r.p99Ms,
    errors: r.errors,
    "statements/write": r.ops > 0 ? r.statements / r.ops : NaN,
    "acknowledged": r.ops,
    "lost": Math.max(0, r.ops - r.counter)
  }))
  printTable(table)
  return { writers: WRITERS, seconds: SECONDS, pool: POOL, table }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const machine = await describeMachine()
  const hot = await runHotBench()
  console.log(`\nwritten to ${writeResult("hot", { machine, ...hot })}`)
}
