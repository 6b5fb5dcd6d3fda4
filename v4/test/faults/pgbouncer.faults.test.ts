/**
 * The owned pool behind PgBouncer in transaction mode (a PgBouncer of the test's own on 127.0.0.1:6441, in front of
 * the shared server): each transaction may run on another server connection. Checked: the store's conformance
 * suite passes through it; named prepared statements are turned off by themselves, with one log line, when the
 * bouncer loses them (PgBouncer before 1.21), and stay on when it keeps them (1.21+ with max_prepared_statements);
 * the pool's server-side timeouts, which PgBouncer refuses as startup parameters, fail the layer with a clear reason.
 */
import { PgClient } from "@effect/sql-pg"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Logger, Redacted } from "effect"
import pg from "pg"
import { PgSessionStore, SessionStore } from "../../src/index.js"
import * as PgPool from "../../src/internal/pgPool.js"
import { defaultUrl, withSchema } from "../support/database.js"
import * as PgBouncer from "../support/pgbouncer.js"
import { postgresSuite } from "../support/postgres.js"

const server = new URL(process.env.DATABASE_URL || defaultUrl)
const database = server.pathname.slice(1)
const port = 6441
const keeps = PgBouncer.keepsPreparedStatements()

let bouncer: PgBouncer.PgBouncer | undefined
beforeAll(async () => {
  bouncer = await PgBouncer.start({
    port,
    target: { host: server.hostname, port: Number(server.port || 5432) },
    poolMode: "transaction",
    poolSize: 4,
    settings: keeps ? { max_prepared_statements: 100 } : {}
  })
  console.log(`PGBOUNCER ${bouncer.version}, transaction mode: prepared statements ${keeps ? "kept by the bouncer" : "turned off by the pool"}`)
}, 30_000)
afterAll(async () => {
  await bouncer?.stop()
})

const url = Redacted.make(`postgres://postgres@127.0.0.1:${port}/${database}`)
/** PgBouncer refuses these as startup parameters: set on the role instead, or 0 here. */
const behindBouncer = { url, statementTimeout: 0, lockTimeout: 0 } as const

describe("behind PgBouncer in transaction mode", () => {
  it.live("a lost named statement turns them off for the pool, once, with one log line; the statement still answers", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const context = yield* Layer.build(PgPool.layerClient({ ...behindBouncer, maxConnections: 1, pipelinedReads: 0 }))
      const { pool } = Context.get(context as unknown as Context.Context<PgPool.OwnedPool>, PgPool.OwnedPool)
      const name = `es_probe_${Math.random().toString(36).slice(2, 10)}`
      const logged = <A, E>(effect: Effect.Effect<A, E>) =>
        Effect.provide(effect, Logger.layer([Logger.make(({ message }) => lines.push(`${message}`))]))
      const run = logged(PgPool.query<{ pid: number }>(pool, name, "SELECT pg_backend_pid() AS pid", [], 5_000))
      const first = yield* run // parsed on the server connection this transaction got
      // Another client holds that server connection in a transaction: the pool's next one runs on another.
      const holder = new pg.Client({ connectionString: Redacted.value(url) })
      yield* Effect.acquireRelease(Effect.promise(() => holder.connect()), () => Effect.promise(() => holder.end()))
      yield* Effect.promise(() => holder.query("BEGIN").then(() => holder.query("SELECT 1")))
      const second = yield* run
      const third = yield* run
      yield* Effect.promise(() => holder.query("COMMIT"))
      expect(second[0]!.pid).not.toBe(first[0]!.pid) // another server connection: the test provoked what it meant to
      expect(third).toHaveLength(1)
      if (keeps) {
        expect(lines).toEqual([])
      } else {
        expect(lines).toHaveLength(1)
        expect(lines[0]).toMatch(/^prepared statements turned off: the server lost one between transactions \(SQLSTATE 26000\)/)
      }
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("the store under concurrent load through the bouncer: every operation answers", () =>
    Effect.gen(function*() {
      const tableName = `es_bouncer_${Math.random().toString(36).slice(2, 10)}`
      const context = yield* Layer.build(PgSessionStore.layerPool({ ...behindBouncer, tableName, cleanupInterval: 0, maxConnections: 6 }))
      const store = Context.get(context, SessionStore.SessionStore)
      const keys = yield* Effect.forEach(Array.from({ length: 20 }), () => store.generate({ value: "0" }), { concurrency: 10 })
      yield* Effect.forEach(Array.from({ length: 400 }), (_, i) => {
        const key = keys[i % keys.length]!
        return i % 3 === 0 ? Effect.asVoid(store.modify(key, (v) => String(Number(v) + 1))) : Effect.asVoid(store.get(key))
      }, { concurrency: 16, discard: true })
      const values = yield* Effect.forEach(keys, (key) => Effect.map(store.get(key), (v) => Number(v.value)))
      expect(values.reduce((a, b) => a + b, 0)).toBe(Math.ceil(400 / 3))
      const sql = Context.get(context, PgClient.PgClient)
      yield* sql.unsafe(`DROP TABLE ${tableName}`)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("the pool's statement_timeout and lock_timeout, which PgBouncer refuses, fail the layer with what to change", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Layer.build(PgSessionStore.layerPool({ url, cleanupInterval: 0 }))))
      expect(error).toMatchObject({ _tag: "InvalidConfig", option: "statementTimeout" })
      expect(error.message).toMatch(/refused the startup parameter statement_timeout.*Set statementTimeout and lockTimeout to 0/)
    }), { timeout: 30_000 })
})

// The store's conformance suite (and the PostgreSQL-only tests) on an owned pool through the bouncer.
postgresSuite(
  "PgSessionStore through PgBouncer (transaction mode), owned pool",
  withSchema(Layer.suspend(() => PgPool.layerClient({ ...behindBouncer, maxConnections: 10 })))
)
