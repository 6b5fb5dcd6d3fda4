/**
 * Store level, side by side on one database: effect-session's PgSessionStore, the same SQL through raw `pg` with
 * named prepared statements (the floor of overhead), and connect-pg-simple through express-session's Store API
 * (what Node users run today). Pool of 10, concurrency 1 and 16, tables pre-filled with live sessions.
 * pgbench runs the equivalent get and upsert as the database's ceiling on this machine.
 *
 * With `BENCH_BASELINE=path/to/dist` an earlier build of the library runs beside this one ("effect-session, before").
 * Then, at concurrency 1, 16 and 64, how many statements the owned pool's batches carried (its batch-size histogram).
 *
 *   npx tsx bench/store.ts        (BENCH_SECONDS per cell, default 2; BENCH_ROUNDS, default 3; BENCH_ROWS, default 100000)
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { promisify } from "node:util"
import connectPgSimple from "connect-pg-simple"
import session from "express-session"
import pg from "pg"
import * as Observability from "../dist/internal/observability.js"
import { schema, statements } from "../dist/internal/pgStatements.js"
import * as Library from "../dist/index.js"
import { MemorySessionStore, SessionStore } from "../dist/index.js"
import { keyOf, keySql, missingKey, sampleValue } from "./lib/keys.js"
import { databaseUrl, describeMachine, embedded, printTable, writeResult } from "./lib/machine.js"
import { interleaved, measureEffect, measurePromise, type Stats } from "./lib/measure.js"

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const ROWS = Number(process.env.BENCH_ROWS ?? 100_000)
const POOL = 10
const CONCURRENCY = process.env.BENCH_CONCURRENCY ? process.env.BENCH_CONCURRENCY.split(",").map(Number) : [1, 16]
const ALL_OPS = ["get (hit)", "get (miss)", "set", "generate", "modify", "mix 90/10"] as const
type Op = typeof ALL_OPS[number]
/** BENCH_OPS="get (hit),set" runs only those operations. */
const OPS: ReadonlyArray<Op> = process.env.BENCH_OPS
  ? ALL_OPS.filter((op) => process.env.BENCH_OPS!.split(",").includes(op))
  : ALL_OPS
const WRITES: ReadonlyArray<Op> = ["set", "generate", "modify"]
const WEEK = 7 * 24 * 3600 * 1000

/** An earlier build of the library to run beside this one, if given. */
const BASELINE = process.env.BENCH_BASELINE
const baseline: typeof Library | undefined = BASELINE
  ? await import(pathToFileURL(join(resolve(BASELINE), "index.js")).href)
  : undefined

const TABLES = {
  effect: "bench_store_effect",
  effectUnlogged: "bench_store_effect_unlogged",
  raw: "bench_store_raw",
  cps: "bench_store_cps"
} as const

const randomRow = () => 1 + Math.floor(Math.random() * ROWS)
const hash = (key: string) => createHash("sha256").update(key).digest()

/** Creates and fills the tables in SQL (fast even for a million rows). */
const prepare = async (admin: pg.Client) => {
  const fill = (table: string) => `
    INSERT INTO ${table} (id, value, expires_at, created_at)
    SELECT sha256(convert_to(${keySql("n")}, 'UTF8')), $1, now() + interval '1 day', now()
    FROM generate_series(1, ${ROWS}) AS n`
  for (const [table, unlogged] of [[TABLES.effect, false], [TABLES.effectUnlogged, true], [TABLES.raw, false]] as const) {
    await admin.query(`DROP TABLE IF EXISTS ${table}`)
    await admin.query(schema(`"${table}"`, table, unlogged ? "unlogged" : "full").createTable)
    for (const [, ddl] of schema(`"${table}"`, table, "full").indexes) await admin.query(ddl)
    await admin.query(fill(table), [sampleValue(0)])
  }
  await admin.query(`DROP TABLE IF EXISTS ${TABLES.cps}`)
  await admin.query(`CREATE TABLE ${TABLES.cps} (sid varchar NOT NULL COLLATE "default" PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL)`)
  await admin.query(`CREATE INDEX ${TABLES.cps}_expire ON ${TABLES.cps} (expire)`)
  await admin.query(
    `INSERT INTO ${TABLES.cps} (sid, sess, expire)
     SELECT ${keySql("n")}, $1::json, now() + interval '1 day' FROM generate_series(1, ${ROWS}) AS n`,
    [JSON.stringify(cpsSession(0))]
  )
  await admin.query(`VACUUM ANALYZE ${TABLES.effect}, ${TABLES.effectUnlogged}, ${TABLES.raw}, ${TABLES.cps}`)
}

type Runner = (op: Op, concurrency: number) => Promise<Stats>

// ---------- effect-session ----------
/** On the pool the library builds (`layerPool`, the fast path), or on a `PgClient.layer` of the app's own. */
const storeLayer = (
  tableName: string,
  durability: "full" | "relaxed" | "unlogged",
  path: "pool" | "client",
  lib: typeof Library = Library
) => {
  const options = { tableName, durability, cleanupInterval: 0 } as const
  const url = Redacted.make(databaseUrl())
  return path === "pool"
    ? lib.PgSessionStore.layerPool({ ...options, url, maxConnections: POOL, preparedStatements: !embedded() })
    : lib.PgSessionStore.layer(options).pipe(Layer.provide(PgClient.layer({ url, maxConnections: POOL })))
}

const effectRunner = (
  tableName: string,
  durability: "full" | "relaxed" | "unlogged",
  path: "pool" | "client" = "pool",
  instrumented = true,
  lib: typeof Library = Library
): Runner => (op, concurrency) => {
  const program = Effect.gen(function*() {
    const store = yield* lib.SessionStore.SessionStore
    const ops: Record<Op, (i: number) => Effect.Effect<unknown, unknown>> = {
      "get (hit)": () => store.get(keyOf(randomRow())),
      "get (miss)": () => Effect.either(store.get(missingKey())),
      set: (i) => store.set(keyOf(randomRow()), sampleValue(i)),
      generate: (i) => store.generate({ value: sampleValue(i) }),
      modify: (i) => store.modify(keyOf(randomRow()), () => sampleValue(i)),
      "mix 90/10": (i) => i % 10 === 0 ? store.set(keyOf(randomRow()), sampleValue(i)) : store.get(keyOf(randomRow()))
    }
    return yield* measureEffect(concurrency, SECONDS, ops[op])
  })
  return program.pipe(
    Effect.provide(storeLayer(tableName, durability, path, lib)),
    Effect.scoped,
    // Spans and metrics off for this run only: what instrumentation costs (no tracer installed).
    Effect.locally(Observability.currentEnabled, instrumented),
    Effect.runPromise
  )
}

// ---------- diagnostic: bare @effect/sql-pg running our get SQL, no store logic ----------
const bareEffectSqlRunner = (tableName: string): Runner => (op, concurrency) => {
  const q = statements(`"${tableName}"`, "full")
  return Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    const key = op === "get (hit)" ? () => keyOf(randomRow()) : missingKey
    return yield* measureEffect(concurrency, SECONDS, () => sql.unsafe(q.find, [hash(key())]).withoutTransform)
  }).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(databaseUrl()), maxConnections: POOL })),
    Effect.scoped,
    Effect.runPromise
  )
}

// ---------- raw pg, named prepared statements, same SQL ----------
const rawRunner = (pool: pg.Pool): Runner => {
  const q = statements(`"${TABLES.raw}"`, "full")
  // The embedded engine shares one session between connections: names would collide there.
  const named = <A extends { name: string }>(query: A) => embedded() ? { ...query, name: undefined } : query
  const find = (key: string) =>
    pool.query<{ value: string; expires_at: number; version: string }>(named({ name: "find", text: q.find, values: [hash(key)] }))
  const ops: Record<Op, (i: number) => Promise<unknown>> = {
    "get (hit)": () => find(keyOf(randomRow())),
    "get (miss)": () => find(missingKey()),
    set: (i) => {
      const now = Date.now()
      return pool.query(named({ name: "upsert", text: q.upsert, values: [hash(keyOf(randomRow())), sampleValue(i), now + WEEK, now] }))
    },
    generate: (i) => {
      const now = Date.now()
      return pool.query(named({ name: "insert", text: q.insert, values: [hash(missingKey()), sampleValue(i), now + WEEK, now, null, null, null] }))
    },
    modify: async (i) => {
      const id = hash(keyOf(randomRow()))
      const { rows } = await pool.query<{ version: string }>(named({ name: "find", text: q.find, values: [id] }))
      const now = Date.now()
      return pool.query(named({ name: "cas", text: q.compareAndSet, values: [id, rows[0]!.version, sampleValue(i), null, now] }))
    },
    "mix 90/10": (i) => i % 10 === 0 ? ops.set(i) : ops["get (hit)"](i)
  }
  return (op, concurrency) => measurePromise(concurrency, SECONDS, ops[op])
}

// ---------- connect-pg-simple through express-session's Store API ----------
const cpsSession = (i: number) => ({
  cookie: { originalMaxAge: WEEK, expires: new Date(Date.now() + WEEK).toISOString(), httpOnly: true, path: "/" },
  user: `user-${i}`,
  roles: ["reader"],
  cart: [i % 7, i % 11],
  visits: i % 100
})

const cpsRunner = (pool: pg.Pool): Runner => {
  const PgStore = connectPgSimple(session)
  const store = new PgStore({ pool, tableName: TABLES.cps, pruneSessionInterval: false })
  const get = promisify(store.get.bind(store)) as (sid: string) => Promise<unknown>
  const set = promisify(store.set.bind(store)) as (sid: string, s: unknown) => Promise<void>
  const ops: Record<Op, (i: number) => Promise<unknown>> = {
    "get (hit)": () => get(keyOf(randomRow())),
    "get (miss)": () => get(missingKey()),
    set: (i) => set(keyOf(randomRow()), cpsSession(i)),
    generate: (i) => set(missingKey(), cpsSession(i)),
    modify: async (i) => { // read, change, write back: not atomic (last write wins)
      const sid = keyOf(randomRow())
      await get(sid)
      await set(sid, cpsSession(i))
    },
    "mix 90/10": (i) => i % 10 === 0 ? ops.set(i) : ops["get (hit)"](i)
  }
  return (op, concurrency) => measurePromise(concurrency, SECONDS, ops[op])
}

// ---------- pgbench, the ceiling ----------
const pgbench = (op: "get (hit)" | "set", concurrency: number) => {
  const q = statements(`"${TABLES.raw}"`, "full")
  const id = `sha256(convert_to(${keySql(":n")}, 'UTF8'))`
  // Every occurrence of a parameter (the statements use some twice): a script with one left cannot be prepared.
  const sql = op === "get (hit)"
    ? q.find.replaceAll("$1", id)
    : q.upsert.replaceAll("$1", id).replaceAll("$2", `repeat('x', ${sampleValue(1).length})`)
      .replaceAll(/to_timestamp\(\$3::float8 \/ 1000\)/g, "now() + interval '7 days'")
      .replaceAll(/to_timestamp\(\$4::float8 \/ 1000\)/g, "now()")
  const file = join(tmpdir(), `effect-session-pgbench-${process.pid}-${op === "set" ? "set" : "get"}.sql`)
  writeFileSync(file, `\\set n random(1, ${ROWS})\n${sql.replace(/\s+/g, " ")};\n`)
  let out: string
  try {
    out = execFileSync("pgbench", [
      "-n", "-M", "prepared", "-c", String(concurrency), "-j", String(Math.min(concurrency, 2)),
      // pgbench takes whole seconds; BENCH_SECONDS may be fractional.
      "-T", String(Math.max(1, Math.round(SECONDS))), "-f", file, databaseUrl()
    ], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
  } finally {
    rmSync(file, { force: true })
  }
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1])
  const latency = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1])
  return { opsPerSec: tps, avgLatencyMs: latency }
}

const hasPgbench = () => {
  try {
    execFileSync("pgbench", ["--version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/**
 * What the library's spans and metrics cost with no tracer installed, where it can be resolved: CPU only (the
 * in-memory backend), get and modify at concurrency 16, 9 interleaved rounds of 1 s, medians. On the database the
 * machine's noise is larger than the effect.
 */
const instrumentationCost = () =>
  Effect.gen(function*() {
    const store = yield* SessionStore.make(MemorySessionStore.backend(), { cleanupInterval: 0 })
    const keys = yield* Effect.forEach(Array.from({ length: 1000 }), (_, i) => store.generate({ value: sampleValue(i) }))
    const key = () => keys[Math.floor(Math.random() * keys.length)]!
    const ops = { get: () => store.get(key()), modify: () => store.modify(key(), (v) => v) }
    const rows: Array<{ op: string; "ops/s with": number; "ops/s without": number; "with / without": number }> = []
    for (const [op, run] of Object.entries(ops)) {
      const rates = { on: [] as Array<number>, off: [] as Array<number> }
      for (let round = 0; round < 9; round++) {
        for (const on of round % 2 === 0 ? [true, false] : [false, true]) {
          const measured = measureEffect(16, 1, run).pipe(Effect.locally(Observability.currentEnabled, on))
          rates[on ? "on" : "off"].push((yield* measured).opsPerSec)
        }
      }
      const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
      rows.push({
        op,
        "ops/s with": Math.round(median(rates.on)),
        "ops/s without": Math.round(median(rates.off)),
        "with / without": median(rates.on) / median(rates.off)
      })
    }
    return rows
  }).pipe(Effect.scoped, Effect.runPromise)

/** The batch-size histogram of the lane `kind` (cumulative buckets) and its count of statements. */
const histogram = async (kind: string) => {
  const { batchSize } = await import("../dist/internal/pgBatch.js")
  const { MetricLabel } = await import("effect")
  const state = batchSize.unsafeValue([MetricLabel.make("kind", kind)])
  return { buckets: state.buckets.map(([bound, n]) => [bound, n] as const), count: state.count, sum: state.sum }
}

/**
 * How many sessions the owned pool's statements carried: each operation alone at concurrency 1, 16 and 64, the
 * histogram's growth over the run. "callers" is the share of operations that went out with others.
 */
const batchSizes = async () => {
  const ops: ReadonlyArray<[Op, string]> = [["get (hit)", "read"], ["set", "set"], ["modify", "write"]]
  const rows: Array<Record<string, string | number>> = []
  for (const concurrency of [1, 16, 64]) {
    for (const [op, kind] of ops) {
      const before = await histogram(kind)
      await effectRunner(TABLES.effect, "full")(op, concurrency)
      const after = await histogram(kind)
      const statements = after.count - before.count
      const callers = after.sum - before.sum
      let previous = 0
      const cells: Array<string> = []
      after.buckets.forEach(([bound, n], i) => {
        const added = n - (before.buckets[i]?.[1] ?? 0)
        const low = i === 0 ? 1 : after.buckets[i - 1]![0] + 1
        if (added - previous > 0) cells.push(`${low === bound ? bound : `${low}-${bound}`}: ${added - previous}`)
        previous = added
      })
      const alone = (after.buckets[0]?.[1] ?? 0) - (before.buckets[0]?.[1] ?? 0)
      rows.push({
        op,
        conc: concurrency,
        statements,
        "mean size": statements > 0 ? callers / statements : 0,
        "shared by": statements > 0 ? `${Math.round((100 * (callers - alone)) / callers)}% of callers` : "",
        histogram: cells.join(", ")
      })
    }
  }
  return rows
}

export const runStoreBench = async () => {
  console.log(`\n## Store level: ${ROWS} live sessions per table, pool ${POOL}, ${ROUNDS} interleaved rounds of ${SECONDS}s per cell, ${databaseUrl().replace(/:[^:@/]*@/, ":***@")}\n`)
  const admin = new pg.Client({ connectionString: databaseUrl() })
  await admin.connect()
  await prepare(admin)
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: POOL })
  const runners: Array<[string, Runner, ReadonlyArray<Op>]> = [
    ["effect-session", effectRunner(TABLES.effect, "full"), OPS],
    ...(baseline === undefined
      ? []
      : [["effect-session, before", effectRunner(TABLES.effect, "full", "pool", true, baseline), OPS] as [string, Runner, ReadonlyArray<Op>]]),
    ["effect-session on PgClient.layer", effectRunner(TABLES.effect, "full", "client"), ["get (hit)", "set"]],
    ["effect-session, no spans or metrics", effectRunner(TABLES.effect, "full", "pool", false), ["get (hit)", "set"]],
    ["raw pg", rawRunner(pool), OPS],
    ["connect-pg-simple", cpsRunner(pool), OPS],
    ["@effect/sql-pg alone, same SQL", bareEffectSqlRunner(TABLES.effect), ["get (hit)", "get (miss)"]],
    ["effect-session relaxed", effectRunner(TABLES.effect, "relaxed"), WRITES],
    ["effect-session unlogged", effectRunner(TABLES.effectUnlogged, "unlogged"), WRITES]
  ]
  const results: Array<{ op: Op; concurrency: number; impl: string } & Stats> = []
  for (const concurrency of CONCURRENCY) {
    for (const op of OPS) {
      const competing = runners.filter(([, , ops]) => ops.includes(op))
      const stats = await interleaved(ROUNDS, competing.map(([impl, run]) => [impl, () => run(op, concurrency)] as const))
      for (const [impl, s] of stats) results.push({ op, concurrency, impl, ...s, latencies: [] })
    }
  }
  const ceiling: Array<{ op: string; concurrency: number; opsPerSec: number; avgLatencyMs: number }> = []
  if (embedded()) {
    console.log("the embedded engine: no pgbench ceiling row (pgbench needs a server)")
  } else if (hasPgbench()) {
    for (const concurrency of CONCURRENCY) {
      for (const op of ["get (hit)", "set"] as const) {
        try {
          ceiling.push({ op, concurrency, ...pgbench(op, concurrency) })
        } catch (error) {
          console.log(`pgbench ${op} c${concurrency} failed, its ceiling row is skipped: ${(error as Error).message.split("\n")[0]}`)
        }
      }
    }
  } else {
    console.log("pgbench is not installed: the ceiling row is skipped (apt-get install postgresql-client to add it)")
  }
  await pool.end()
  await admin.end()

  const find = (op: string, c: number, impl: string) => results.find((r) => r.op === op && r.concurrency === c && r.impl === impl)
  const rows = results.map((r) => {
    const ours = find(r.op, r.concurrency, r.impl.startsWith("effect-session") ? r.impl : "effect-session")!
    const before = find(r.op, r.concurrency, "effect-session, before")
    const raw = find(r.op, r.concurrency, "raw pg")!
    const cps = find(r.op, r.concurrency, "connect-pg-simple")!
    const top = ceiling.find((c) => c.op === r.op && c.concurrency === r.concurrency)
    return {
      op: r.op,
      conc: r.concurrency,
      impl: r.impl,
      "ops/s": Math.round(r.opsPerSec),
      "p50 ms": r.p50Ms,
      "p99 ms": r.p99Ms,
      errors: r.errors,
      "ours/raw": r.impl.startsWith("effect-session") ? ours.opsPerSec / raw.opsPerSec : "",
      "ours/cps": r.impl.startsWith("effect-session") ? ours.opsPerSec / cps.opsPerSec : "",
      "of pgbench": top ? r.opsPerSec / top.opsPerSec : "",
      "ours/before": r.impl === "effect-session" && before ? r.opsPerSec / before.opsPerSec : ""
    }
  })
  printTable(rows)
  const instrumentation = results
    .filter((r) => r.impl === "effect-session, no spans or metrics")
    .map((off) => {
      const on = find(off.op, off.concurrency, "effect-session")!
      return { op: off.op, conc: off.concurrency, "with / without spans and metrics": on.opsPerSec / off.opsPerSec }
    })
  if (instrumentation.length > 0) {
    console.log("\nSpans and metrics, no tracer installed, on the database (1.00 = nothing; within this machine's noise):")
    printTable(instrumentation)
  }
  const batches = await batchSizes()
  console.log("\nBatch sizes on the owned pool (sessions per statement; each operation alone, one run of BENCH_SECONDS):")
  printTable(batches)
  const cpu = await instrumentationCost()
  console.log("\nSpans and metrics, no tracer installed, CPU only (in-memory backend, medians of 9 interleaved rounds):")
  printTable(cpu)
  if (ceiling.length > 0) {
    console.log("\npgbench (prepared, same SQL; the database's ceiling on this machine):")
    printTable(ceiling.map((c) => ({ op: c.op, conc: c.concurrency, "ops/s": Math.round(c.opsPerSec), "avg ms": c.avgLatencyMs })))
  }
  return { rows: ROWS, pool: POOL, seconds: SECONDS, rounds: ROUNDS, results, ceiling, instrumentation, instrumentationCpu: cpu, batches, table: rows }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const machine = await describeMachine()
  const store = await runStoreBench()
  console.log(`\nwritten to ${writeResult("store", { machine, ...store })}`)
}
