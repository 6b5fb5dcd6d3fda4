/**
 * Fault injection against the real PostgreSQL server (`npm run test:faults`; CI runs it). The shared server is never
 * stopped: faults come from a TCP proxy of the test's own (black hole, delay, cut), from `pg_terminate_backend`,
 * and from locks held by a second connection. Every phase is bounded in time.
 *
 * Each test asserts: every request answered within a bound, recovery without a restart, and no acknowledged write
 * lost (each client's counter holds at least as many increments as were answered 200). The figures are printed
 * (`FAULT …` lines) and quoted in docs/operations.md.
 */
import { PgClient } from "@effect/sql-pg"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Redacted } from "effect"
import pg from "pg"
import { PgSessionStore, SessionKey, SessionStore } from "../../src/index.js"
import * as PgPipeline from "../../src/internal/pgPipeline.js"
import * as PgPool from "../../src/internal/pgPool.js"
import { defaultUrl } from "../support/database.js"
import { httpServer, serve } from "../support/faultServer.js"
import * as Load from "../support/load.js"
import * as TcpProxy from "../support/tcpProxy.js"

const databaseUrl = process.env.DATABASE_URL || defaultUrl
const server = new URL(databaseUrl)
const target = { host: server.hostname, port: Number(server.port || 5432) }
const timeout = 1_000
/** A request makes at most two store calls (load and save), each within the deadline. */
const bound = 2 * timeout + 1_500

const admin = async <A>(f: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.end()
  }
}

/** A schema of the test's own, dropped afterwards. */
const schema = Effect.acquireRelease(
  Effect.promise(async () => {
    const name = `es_fault_${Math.random().toString(36).slice(2, 10)}`
    await admin((c) => c.query(`CREATE SCHEMA ${name}`))
    return name
  }),
  (name) => Effect.promise(() => admin((c) => c.query(`DROP SCHEMA ${name} CASCADE`))).pipe(Effect.ignore)
)

const throughProxy = (proxy: TcpProxy.TcpProxy) => {
  const url = new URL(databaseUrl)
  url.hostname = "127.0.0.1"
  url.port = String(proxy.port)
  return Redacted.make(url.toString())
}

/** The test app on a pool of its own (4 connections, the test's deadline, no cleanup), on a fresh table. */
const servePool = (options: Pick<PgSessionStore.PoolOptions, "url" | "applicationName" | "connectTimeout">) =>
  Effect.gen(function*() {
    const tableName = `${yield* schema}.sessions`
    const served = yield* serve(PgSessionStore.layerPool({
      tableName,
      timeout,
      maxConnections: 4,
      cleanupInterval: 0,
      ...options
    }))
    return { ...served, tableName }
  })

/** Reads each client's visit counter once the database is healthy again. */
const counters = (base: string, cookies: ReadonlyArray<string | undefined>) =>
  Effect.promise(() =>
    Promise.all(cookies.map(async (cookie) => {
      if (cookie === undefined) return 0
      const reply = await Load.send(`${base}/peek`, { cookie, timeoutMs: 10_000 })
      return reply.status === 200 ? (JSON.parse(reply.body).data.visits as number) : -1
    }))
  )

/** The invariants every fault test checks, and a summary line for the docs. */
const check = (name: string, result: Load.LoadResult, counts: ReadonlyArray<number>, extra: Record<string, unknown> = {}) => {
  const latencies = result.samples.map((s) => s.ms).sort((a, b) => a - b)
  const lost = result.acknowledged.reduce((sum, acked, i) => sum + Math.max(0, acked - counts[i]!), 0)
  console.log(`FAULT ${name}: ${JSON.stringify({
    requests: result.samples.length,
    statuses: Load.statusCounts(result.samples),
    maxMs: latencies.at(-1),
    p99Ms: latencies[Math.floor(latencies.length * 0.99)],
    acknowledgedWritesLost: lost,
    ...extra
  })}`)
  expect(result.samples.filter((s) => s.status === 0)).toEqual([]) // no request left unanswered
  expect(latencies.at(-1)!).toBeLessThanOrEqual(bound)
  expect(lost).toBe(0)
  for (const [i, count] of counts.entries()) expect(count, `client ${i}`).toBeGreaterThanOrEqual(result.acknowledged[i]!)
}

/** When the first 200 came after `since`, and whether the last `window` ms were all 200. */
const recovery = (samples: ReadonlyArray<Load.Sample>, since: number) => {
  const first = samples.filter((s) => s.at >= since && s.status === 200).sort((a, b) => a.at - b.at)[0]
  return first === undefined ? undefined : first.at - since
}

/** A second connection holding `LOCK TABLE … ACCESS EXCLUSIVE` in an open transaction; `release` commits it. */
const lockTable = (tableName: string) =>
  Effect.gen(function*() {
    const holder = new pg.Client({ connectionString: databaseUrl })
    yield* Effect.acquireRelease(Effect.promise(() => holder.connect()), () => Effect.promise(() => holder.end()))
    yield* Effect.promise(() => holder.query("BEGIN").then(() => holder.query(`LOCK TABLE ${tableName} IN ACCESS EXCLUSIVE MODE`)))
    return { release: Effect.promise(() => holder.query("COMMIT")) }
  })

/** A store on its own pool, on a fresh table of the test's schema, without cleanup. */
const ownStore = (options: Omit<PgSessionStore.PoolOptions, "url" | "tableName" | "cleanupInterval">) =>
  Effect.gen(function*() {
    const tableName = `${yield* schema}.sessions`
    const context = yield* Layer.build(PgSessionStore.layerPool({
      url: Redacted.make(databaseUrl),
      tableName,
      cleanupInterval: 0,
      ...options
    }))
    return { tableName, store: Context.get(context, SessionStore.SessionStore) }
  })

const increments = "/"

describe("faults on the owned pool (PgSessionStore.layerPool)", () => {
  it.live("black hole, then healed: answers within the deadline, 2xx again within 10 s, no acknowledged write lost", () =>
    Effect.gen(function*() {
      const proxy = yield* TcpProxy.make(target)
      const { base, lines } = yield* servePool({ url: throughProxy(proxy), connectTimeout: timeout })
      const phases = { holeAt: 2_000, healAt: 6_000 }
      const hole = setTimeout(() => proxy.setMode({ _tag: "blackhole" }), phases.holeAt)
      const heal = setTimeout(() => proxy.setMode({ _tag: "forward" }), phases.healAt)
      const result = yield* Effect.promise(() =>
        Load.run({
          base,
          path: increments,
          clients: 8,
          timeoutMs: 15_000,
          maxMillis: phases.healAt + 14_000,
          // Stop after 3 s of recovered traffic.
          stop: (elapsed, samples) => {
            const healed = recovery(samples, phases.healAt)
            return healed !== undefined && elapsed > phases.healAt + healed + 3_000
          }
        })
      ).pipe(Effect.ensuring(Effect.sync(() => (clearTimeout(hole), clearTimeout(heal)))))
      const recoveredAfter = recovery(result.samples, phases.healAt)
      check("black hole (owned pool)", result, yield* counters(base, result.cookies), {
        recoveredAfterMs: recoveredAfter,
        logLines: lines.length
      })
      const during = result.samples.filter((s) => s.at > phases.holeAt + 200 && s.at + s.ms < phases.healAt)
      expect(during.length).toBeGreaterThan(0)
      expect(during.every((s) => s.status === 503)).toBe(true)
      expect(recoveredAfter).toBeDefined()
      expect(recoveredAfter!).toBeLessThanOrEqual(10_000)
      const tail = result.samples.filter((s) => s.at > phases.healAt + recoveredAfter! + 1_000)
      expect(tail.filter((s) => s.status === 200).length / tail.length).toBeGreaterThan(0.95)
      // Rate-limited, one line each, no stack traces: a few lines for hundreds of failures.
      expect(lines.length).toBeLessThanOrEqual(8)
      expect(lines.join("\n")).not.toMatch(/\n\s+at /)
    }).pipe(Effect.provide(httpServer), Effect.scoped), { timeout: 60_000 })

  it.live("a slow network (delay beyond the deadline): bounded answers, then normal service", () =>
    Effect.gen(function*() {
      const proxy = yield* TcpProxy.make(target)
      const { base } = yield* servePool({ url: throughProxy(proxy), connectTimeout: timeout })
      const phases = { slowAt: 1_500, fastAt: 4_500 }
      const slow = setTimeout(() => proxy.setMode({ _tag: "delay", ms: 3 * timeout }), phases.slowAt)
      const fast = setTimeout(() => proxy.setMode({ _tag: "forward" }), phases.fastAt)
      const result = yield* Effect.promise(() =>
        Load.run({ base, path: increments, clients: 6, timeoutMs: 15_000, maxMillis: 10_000, stop: () => false })
      ).pipe(Effect.ensuring(Effect.sync(() => (clearTimeout(slow), clearTimeout(fast)))))
      const recoveredAfter = recovery(result.samples, phases.fastAt)
      check("delay 3 s (owned pool)", result, yield* counters(base, result.cookies), { recoveredAfterMs: recoveredAfter })
      expect(result.samples.some((s) => s.status === 503)).toBe(true)
      expect(recoveredAfter!).toBeLessThanOrEqual(5_000)
    }).pipe(Effect.provide(httpServer), Effect.scoped), { timeout: 60_000 })

  it.live("every connection cut, and every backend terminated: service resumes at once", () =>
    Effect.gen(function*() {
      const proxy = yield* TcpProxy.make(target)
      const applicationName = `es-fault-${Math.random().toString(36).slice(2, 8)}`
      const { base } = yield* servePool({ url: throughProxy(proxy), applicationName })
      const cut = setTimeout(() => proxy.cut(), 1_500)
      const terminate = setTimeout(() =>
        void admin((c) =>
          c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [applicationName])
        ), 3_500)
      const result = yield* Effect.promise(() =>
        Load.run({ base, path: increments, clients: 6, timeoutMs: 15_000, maxMillis: 6_000, stop: () => false })
      ).pipe(Effect.ensuring(Effect.sync(() => (clearTimeout(cut), clearTimeout(terminate)))))
      check("cut + terminate (owned pool)", result, yield* counters(base, result.cookies))
      const after = result.samples.filter((s) => s.at > 4_500)
      expect(after.length).toBeGreaterThan(0)
      expect(after.every((s) => s.status === 200)).toBe(true)
    }).pipe(Effect.provide(httpServer), Effect.scoped), { timeout: 60_000 })

  it.live("a locked table: bounded answers while it is held, normal service after, no backend left behind", () =>
    Effect.gen(function*() {
      const applicationName = `es-fault-${Math.random().toString(36).slice(2, 8)}`
      const { base, tableName } = yield* servePool({ url: Redacted.make(databaseUrl), applicationName })
      const holder = new pg.Client({ connectionString: databaseUrl })
      yield* Effect.acquireRelease(Effect.promise(() => holder.connect()), () => Effect.promise(() => holder.end()))
      const lock = setTimeout(() => {
        void holder.query("BEGIN").then(() => holder.query(`LOCK TABLE ${tableName} IN ACCESS EXCLUSIVE MODE`))
        setTimeout(() => void holder.query("COMMIT"), 4_000)
      }, 1_500)
      const result = yield* Effect.promise(() =>
        Load.run({ base, path: increments, clients: 16, timeoutMs: 15_000, maxMillis: 9_000, stop: () => false })
      ).pipe(Effect.ensuring(Effect.sync(() => clearTimeout(lock))))
      const recoveredAfter = recovery(result.samples, 5_500)
      check("locked table 4 s, 16 clients, pool 4 (owned pool)", result, yield* counters(base, result.cookies), {
        recoveredAfterMs: recoveredAfter
      })
      expect(result.samples.some((s) => s.status === 503)).toBe(true)
      expect(recoveredAfter!).toBeLessThanOrEqual(2_000)
      const backends = yield* Effect.promise(() =>
        admin((c) => c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [applicationName]))
      )
      expect(backends.rows[0].n).toBeLessThanOrEqual(4 + 2) // the pool, and the two pipelined read connections
    }).pipe(Effect.provide(httpServer), Effect.scoped), { timeout: 60_000 })
})

describe("deadlines in the store", () => {
  it.live("a connection whose statement outlived its deadline is discarded, never reused", () =>
    Effect.gen(function*() {
      const applicationName = `es-fault-${Math.random().toString(36).slice(2, 8)}`
      const { store, tableName } = yield* ownStore({
        applicationName,
        timeout: 500,
        lockTimeout: 0, // only the client-side deadline acts here
        statementTimeout: 0,
        maxConnections: 2
      })
      const key = yield* store.generate({ value: "v" })
      const lock = yield* lockTable(tableName)
      const started = Date.now()
      const error = yield* Effect.flip(store.get(key))
      expect(Date.now() - started).toBeLessThan(1_500)
      expect(error).toMatchObject({ _tag: "SessionStoreError", operation: "get" })
      const stuck = yield* Effect.promise(() =>
        admin((c) => c.query("SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", [applicationName]))
      )
      expect(stuck.rows.length).toBe(1)
      yield* lock.release
      expect((yield* store.get(key)).value).toBe("v")
      // The stuck backend's socket was closed by the deadline: it ends once it gets past the lock.
      yield* Effect.promise(async () => {
        for (let i = 0; i < 50; i++) {
          const left = await admin((c) => c.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [stuck.rows[0].pid]))
          if (left.rows.length === 0) return
          await new Promise((r) => setTimeout(r, 100))
        }
        throw new Error("the timed-out connection is still open")
      })
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("a connection reset in the middle of a query fails that query only: nothing reaches the process", () =>
    Effect.gen(function*() {
      const uncaught: Array<unknown> = []
      const listener = (error: unknown) => void uncaught.push(error)
      yield* Effect.acquireRelease(
        Effect.sync(() => process.on("uncaughtException", listener)),
        () => Effect.sync(() => process.off("uncaughtException", listener))
      )
      const proxy = yield* TcpProxy.make(target)
      const context = yield* Layer.build(PgPool.layerClient({ url: throughProxy(proxy), maxConnections: 2 }))
      const { pool } = Context.get(context as unknown as Context.Context<PgPool.OwnedPool>, PgPool.OwnedPool) // provided beside the client
      const sleeping = yield* Effect.forkChild(Effect.result(PgPool.query(pool, undefined, "SELECT pg_sleep(5)", [], 10_000)))
      yield* Effect.sleep("300 millis") // the query is on the wire
      proxy.cut() // the socket is reset under a checked-out client
      const outcome = yield* Fiber.join(sleeping)
      expect(outcome._tag).toBe("Failure")
      const rows = yield* PgPool.query<{ ok: number }>(pool, undefined, "SELECT 1 AS ok", [], 10_000)
      expect(rows).toEqual([{ ok: 1 }])
      yield* Effect.sleep("200 millis")
      expect(uncaught).toEqual([])
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("a pipelined read past its deadline closes its connection: the reads behind it fail at once, the next works", () =>
    Effect.gen(function*() {
      const pipeline = yield* PgPipeline.make({ connectionString: databaseUrl }, 1)
      const stuck = yield* Effect.forkChild(Effect.result(pipeline.query(undefined, "SELECT pg_sleep(3)", [], 300)))
      yield* Effect.sleep("50 millis")
      const started = Date.now()
      const behind = yield* Effect.result(pipeline.query(undefined, "SELECT 1 AS ok", [], 5_000))
      const waited = Date.now() - started
      expect((yield* Fiber.join(stuck))._tag).toBe("Failure")
      expect(behind._tag).toBe("Failure") // it was on the same stuck connection
      expect(waited).toBeLessThan(1_000) // failed when the connection closed, not after the 3 s sleep
      expect(yield* pipeline.query<{ ok: number }>(undefined, "SELECT 1 AS ok", [], 5_000)).toEqual([{ ok: 1 }])
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("server-side lock_timeout: a lock fails the statement in the database before the client deadline", () =>
    Effect.gen(function*() {
      const { store, tableName } = yield* ownStore({ timeout: 5_000, lockTimeout: 200 })
      const key = yield* store.generate({ value: "v" })
      const lock = yield* lockTable(tableName)
      const started = Date.now()
      const error = yield* Effect.flip(store.get(key))
      expect(Date.now() - started).toBeLessThan(2_000)
      expect((error.cause as { code?: string }).code).toBe("55P03") // lock_not_available, from the server
      yield* lock.release
      expect((yield* store.get(key)).value).toBe("v")
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("start-up on an up-to-date table takes no table lock: it never waits behind open transactions", () =>
    Effect.gen(function*() {
      const tableName = `${yield* schema}.sessions`
      const options = { url: Redacted.make(databaseUrl), tableName, cleanupInterval: 0 }
      yield* Effect.scoped(Layer.build(PgSessionStore.layerPool(options)))
      const holder = new pg.Client({ connectionString: databaseUrl })
      yield* Effect.acquireRelease(Effect.promise(() => holder.connect()), () => Effect.promise(() => holder.end()))
      // An open write transaction holds ROW EXCLUSIVE: CREATE INDEX or ALTER TABLE would wait for it.
      yield* Effect.promise(() =>
        holder.query("BEGIN").then(() =>
          holder.query(`INSERT INTO ${tableName} (id, value, expires_at, created_at) VALUES ($1, '', now(), now())`, [
            SessionKey.hash(SessionKey.generate())
          ])
        )
      )
      const started = Date.now()
      yield* Effect.scoped(Layer.build(PgSessionStore.layerPool(options))).pipe(Effect.timeout("5 seconds"))
      expect(Date.now() - started).toBeLessThan(2_000)
      yield* Effect.promise(() => holder.query("ROLLBACK"))
    }).pipe(Effect.scoped), { timeout: 30_000 })
})

describe("faults on a PgClient of the app's own (PgSessionStore.layer)", () => {
  it.live("black hole: answers within the deadline; recovery needs the owned pool (measured, not required)", () =>
    Effect.gen(function*() {
      const proxy = yield* TcpProxy.make(target)
      const tableName = `${yield* schema}.sessions`
      const { base } = yield* serve(PgSessionStore.layer({ tableName, timeout, cleanupInterval: 0 }).pipe(
        Layer.provide(PgClient.layer({ url: throughProxy(proxy), maxConnections: 4, connectTimeout: timeout }))
      ))
      // @effect/sql-pg 4 closes its pool only once every connection is back: one wedged by the black hole never is
      // (0.x gave up after a second). Its sockets are reset before the client closes.
      yield* Effect.addFinalizer(() => Effect.sync(() => proxy.cut()))
      const phases = { holeAt: 1_500, healAt: 5_000 }
      const hole = setTimeout(() => proxy.setMode({ _tag: "blackhole" }), phases.holeAt)
      const heal = setTimeout(() => proxy.setMode({ _tag: "forward" }), phases.healAt)
      const result = yield* Effect.promise(() =>
        Load.run({ base, path: increments, clients: 6, timeoutMs: 15_000, maxMillis: 12_000, stop: () => false })
      ).pipe(Effect.ensuring(Effect.sync(() => (clearTimeout(hole), clearTimeout(heal)))))
      const during = result.samples.filter((s) => s.at > phases.holeAt + 200 && s.at + s.ms < phases.healAt)
      const latencies = result.samples.map((s) => s.ms).sort((a, b) => a - b)
      console.log(`FAULT black hole (app's PgClient): ${JSON.stringify({
        requests: result.samples.length,
        statuses: Load.statusCounts(result.samples),
        maxMs: latencies.at(-1),
        recoveredAfterMs: recovery(result.samples, phases.healAt) ?? "not within 7 s"
      })}`)
      expect(result.samples.filter((s) => s.status === 0)).toEqual([])
      expect(latencies.at(-1)!).toBeLessThanOrEqual(bound)
      expect(during.every((s) => s.status === 503)).toBe(true)
    }).pipe(Effect.provide(httpServer), Effect.scoped), { timeout: 60_000 })
})
