/**
 * Scale: a table with 1M live and 1M expired sessions. Get latency with and without the cleanup running at the
 * same time, the time the cleanup takes to remove the 1M expired rows, get latency at 10k versus 1M live rows, and
 * listing one subject's sessions when the 1M live sessions belong to 10k subjects (100 each).
 *
 *   npx tsx bench/scale.ts       (BENCH_SCALE_ROWS, default 1000000; BENCH_SECONDS, default 2)
 */
import { Duration, Effect, Fiber, Redacted } from "effect"
import pg from "pg"
import { schema } from "../dist/internal/pgStatements.js"
import { PgSessionStore, SessionStore } from "../dist/index.js"
import { keyOf, keySql, sampleValue } from "./lib/keys.js"
import { databaseUrl, describeMachine, embedded, printTable, writeResult } from "./lib/machine.js"
import { measureEffect, type Stats } from "./lib/measure.js"

const ROWS = Number(process.env.BENCH_SCALE_ROWS ?? 1_000_000)
const SMALL = 10_000
const SUBJECTS = 10_000
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2)
const CONCURRENCY = 8

const fill = async (admin: pg.Client, table: string, live: number, expired: number) => {
  await admin.query(`DROP TABLE IF EXISTS ${table}`)
  await admin.query(schema(`"${table}"`, table, "full").createTable)
  const insert = (from: number, to: number, expires: string) =>
    admin.query(
      `INSERT INTO ${table} (id, value, expires_at, created_at, last_seen_at, subject)
       SELECT sha256(convert_to(${keySql("n")}, 'UTF8')), $1, ${expires}, now(), now() - n * interval '1 millisecond',
         'user-' || (n % ${SUBJECTS}) FROM generate_series(${from}, ${to}) AS n`,
      [sampleValue(0)]
    )
  await insert(1, live, "now() + interval '1 day'")
  if (expired > 0) await insert(live + 1, live + expired, "now() - interval '1 day'")
  for (const [, ddl] of schema(`"${table}"`, table, "full").indexes) await admin.query(ddl)
  await admin.query(`VACUUM ANALYZE ${table}`)
}

const withStore = <A, E>(table: string, f: (store: SessionStore.Service) => Effect.Effect<A, E>) =>
  Effect.flatMap(SessionStore.SessionStore, f).pipe(
    Effect.provide(PgSessionStore.layerPool({
      url: Redacted.make(databaseUrl()),
      tableName: table,
      cleanupInterval: 0,
      maxConnections: 10,
      // Cleanup batches and listings over a million rows may take longer than a request's default deadline.
      timeout: "60 seconds",
      statementTimeout: 0,
      ...(embedded() ? { preparedStatements: false, pipelinedReads: 0 } : {})
    })),
    Effect.scoped,
    Effect.runPromise
  )

const getLoad = (store: SessionStore.Service, live: number) =>
  measureEffect(CONCURRENCY, SECONDS, () => store.get(keyOf(1 + Math.floor(Math.random() * live))))

/** Lists a random subject's sessions, one at a time (the latency of a "your sessions" page); ROWS / SUBJECTS each. */
const listLoad = (store: SessionStore.Service) =>
  measureEffect(1, SECONDS, () =>
    Effect.flatMap(store.list(`user-${Math.floor(Math.random() * SUBJECTS)}`), (sessions) =>
      sessions.length === Math.min(1000, ROWS / SUBJECTS) ? Effect.void : Effect.fail(`listed ${sessions.length}`)))

export const runScaleBench = async () => {
  console.log(`\n## Scale: ${ROWS} live + ${ROWS} expired rows vs ${SMALL} live rows, get at concurrency ${CONCURRENCY}\n`)
  const admin = new pg.Client({ connectionString: databaseUrl() })
  await admin.connect()
  const t0 = performance.now()
  await fill(admin, "bench_scale_small", SMALL, 0)
  await fill(admin, "bench_scale_large", ROWS, ROWS)
  const fillSeconds = (performance.now() - t0) / 1000
  const size = await admin.query<{ size: string }>(`SELECT pg_size_pretty(pg_total_relation_size('bench_scale_large')) AS size`)

  const small = await withStore("bench_scale_small", (store) => getLoad(store, SMALL))
  const result = await withStore("bench_scale_large", (store) =>
    Effect.gen(function*() {
      const quiet = yield* getLoad(store, ROWS)
      const listing = yield* listLoad(store)
      const started = performance.now()
      const cleanup = yield* Effect.fork(Effect.timed(store.deleteExpired))
      const during = yield* getLoad(store, ROWS)
      const [duration, removed] = yield* Fiber.join(cleanup)
      const cleanupSeconds = Duration.toMillis(duration) / 1000
      const overlapSeconds = Math.min(cleanupSeconds, (performance.now() - started) / 1000)
      const after = yield* getLoad(store, ROWS)
      const listingAfter = yield* listLoad(store)
      return { quiet, listing, listingAfter, during, removed, cleanupSeconds, overlapSeconds, after }
    }))
  await admin.query("DROP TABLE IF EXISTS bench_scale_small, bench_scale_large")
  await admin.end()

  const row = (label: string, s: Stats) => ({ case: label, "get/s": Math.round(s.opsPerSec), "p50 ms": s.p50Ms, "p99 ms": s.p99Ms, errors: s.errors })
  printTable([
    row(`${SMALL} live rows`, small),
    row(`${ROWS} live + ${ROWS} expired, no cleanup`, result.quiet),
    row(`same, cleanup running`, result.during),
    row(`${ROWS} live after cleanup`, result.after)
  ])
  console.log(`\ncleanup removed ${result.removed} expired rows in ${result.cleanupSeconds.toFixed(1)} s (batches of 1000)` +
    `; the loaded window overlapped it for ${result.overlapSeconds.toFixed(1)} s`)
  console.log(`p99 during cleanup / without: ${(result.during.p99Ms / result.quiet.p99Ms).toFixed(2)}`)
  console.log(`p50 at ${ROWS} / at ${SMALL} live rows: ${(result.after.p50Ms / small.p50Ms).toFixed(2)}; p99: ${(result.after.p99Ms / small.p99Ms).toFixed(2)}`)
  console.log(`(table with ${2 * ROWS} rows: ${size.rows[0]?.size}; filled in ${fillSeconds.toFixed(0)} s)`)
  console.log(`\nlisting (one at a time) one subject's ${ROWS / SUBJECTS} sessions among ${ROWS} live (+${ROWS} expired) and ${SUBJECTS} subjects:` +
    ` ${Math.round(result.listing.opsPerSec)} lists/s, p50 ${result.listing.p50Ms.toFixed(2)} ms, p99 ${result.listing.p99Ms.toFixed(2)} ms` +
    `, errors ${result.listing.errors}; after the cleanup: ${Math.round(result.listingAfter.opsPerSec)} lists/s, p50 ` +
    `${result.listingAfter.p50Ms.toFixed(2)} ms, p99 ${result.listingAfter.p99Ms.toFixed(2)} ms (target: p99 under 2 ms)`)
  const strip = (s: Stats) => ({ ...s, latencies: undefined })
  return {
    rows: ROWS,
    small: SMALL,
    concurrency: CONCURRENCY,
    seconds: SECONDS,
    getAtSmall: strip(small),
    getWithoutCleanup: strip(result.quiet),
    getDuringCleanup: strip(result.during),
    getAfterCleanup: strip(result.after),
    subjects: SUBJECTS,
    listSubject: strip(result.listing),
    listSubjectAfterCleanup: strip(result.listingAfter),
    cleanupRemoved: result.removed,
    cleanupSeconds: result.cleanupSeconds,
    tableSize: size.rows[0]?.size
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const machine = await describeMachine()
  const scale = await runScaleBench()
  console.log(`\nwritten to ${writeResult("scale", { machine, ...scale })}`)
}
