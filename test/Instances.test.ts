/**
 * Several instances of the store on one PostgreSQL table, in one process (across processes, under load and through a
 * rolling restart: test/faults/instances.faults.test.ts). Start-up waits, bounded, while another instance upgrades
 * the table or a migration holds it, and says why when it gives up; the background cleanup runs once per interval
 * between the instances (a lease beside the table), and a table managed by its team without the lease is told so.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Logger, TestClock } from "effect"
import { PgSessionStore, SessionKey, SessionStore } from "../src/index.js"
import { ServerOwnedPool, ServerPgClient, TestSchema, withSchema } from "./support/database.js"

const build = (options: PgSessionStore.Options) =>
  Effect.map(Layer.build(PgSessionStore.layer(options)), (context) => Context.get(context, SessionStore.SessionStore))

/** Real time passing (the tests that move the TestClock let the store's statements run meanwhile). */
const realSleep = (millis: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, millis)))

/** Runs `statement` (the lock) then holds it for `seconds` in a transaction of its own; resolves `held` once it holds. */
const holdLock = (statement: string, seconds: number, held: Deferred.Deferred<void>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(Effect.gen(function*() {
      yield* sql.unsafe(statement)
      yield* Deferred.succeed(held, undefined)
      yield* sql.unsafe(`SELECT pg_sleep(${seconds})`)
    })))

/**
 * What another instance upgrading `tableName` holds (its advisory lock), held for `seconds` from a fiber of the
 * current scope; returns the fiber once the lock is held.
 */
const holdUpgradeLock = (tableName: string, seconds: number) =>
  Effect.gen(function*() {
    const target = yield* PgSessionStore.quoteTableName(tableName)
    const held = yield* Deferred.make<void>()
    const key = `effect-session:${target.quoted}`.replaceAll("'", "''")
    const holder = yield* Effect.forkScoped(holdLock(`SELECT pg_advisory_xact_lock(hashtext('${key}'))`, seconds, held))
    yield* Deferred.await(held)
    return holder
  })

/** The claims recorded in the table's cleanup lease. */
const claims = (tableName: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const target = yield* PgSessionStore.quoteTableName(tableName)
    const [row] = yield* sql.unsafe<{ runs: number }>(`SELECT runs::int AS runs FROM ${target.lease}`)
    return row?.runs ?? 0
  })

/** The log lines written while `effect` runs. */
const withLines = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const result = yield* effect.pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => void lines.push(`${message}`))))
    )
    return { result, lines }
  })

const suite = (name: string, client: Parameters<typeof withSchema>[0]) =>
  layer(withSchema(client), { timeout: 60_000 })(name, (it) => {
    describe("start-up beside another instance or a migration", () => {
      it.effect("waits while another instance holds the table's upgrade lock, then starts", () =>
        Effect.scoped(Effect.gen(function*() {
          const tableName = (yield* TestSchema).table()
          const holder = yield* holdUpgradeLock(tableName, 2.5)
          const started = Date.now()
          const { lines } = yield* withLines(Effect.scoped(Effect.flatMap(
            build({ tableName, startupTimeout: "20 seconds", cleanupInterval: 0 }),
            (store) => store.generate({ value: "after the wait" })
          )))
          const waited = Date.now() - started
          yield* Fiber.join(holder)
          expect(waited).toBeGreaterThan(1_500) // it waited for the lock (held 2.5 s) instead of failing at once
          expect(lines.filter((line) => line.includes("start-up waits for it"))).toHaveLength(1)
        })))

      it.effect("a table of an earlier version, locked by a migration: start-up waits, then upgrades it", () =>
        Effect.scoped(Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const tableName = (yield* TestSchema).table()
          yield* sql.unsafe(`CREATE TABLE ${tableName} (
            id bytea PRIMARY KEY, value text NOT NULL, expires_at timestamptz NOT NULL,
            created_at timestamptz NOT NULL, version bigint NOT NULL DEFAULT 0)`)
          const key = SessionKey.generate()
          yield* sql.unsafe(
            `INSERT INTO ${tableName} (id, value, expires_at, created_at) VALUES ($1, 'kept', to_timestamp(4102444800), now())`,
            [SessionKey.hash(key)]
          )
          const held = yield* Deferred.make<void>()
          const migration = yield* Effect.forkScoped(holdLock(`LOCK TABLE ${tableName} IN ACCESS EXCLUSIVE MODE`, 2.5, held))
          yield* Deferred.await(held)
          const value = yield* Effect.scoped(Effect.flatMap(
            build({ tableName, startupTimeout: "20 seconds", cleanupInterval: 0 }),
            (store) => Effect.zipRight(store.rotate(key, (v) => v, { subject: "u" }), store.list("u"))
          ))
          yield* Fiber.join(migration)
          expect(value).toHaveLength(1) // upgraded: the owner columns exist, and the session was kept
        })))

      it.effect("past startupTimeout it fails with SessionStoreError (init) saying why, and changes nothing", () =>
        Effect.scoped(Effect.gen(function*() {
          const tableName = (yield* TestSchema).table()
          const holder = yield* holdUpgradeLock(tableName, 2.8)
          const started = Date.now()
          const error = yield* Effect.flip(Effect.scoped(build({ tableName, startupTimeout: "1 second", cleanupInterval: 0 })))
          const waited = Date.now() - started
          expect(error).toMatchObject({ _tag: "SessionStoreError", operation: "init" })
          expect(error.message).toContain("startupTimeout")
          expect(waited).toBeGreaterThanOrEqual(900)
          expect(waited).toBeLessThan(2_500) // bounded: it did not wait for the holder (2.8 s)
          yield* Fiber.join(holder)
          const sql = yield* SqlClient.SqlClient
          const { quoted } = yield* PgSessionStore.quoteTableName(tableName)
          expect(yield* sql.unsafe(`SELECT to_regclass($1) AS t`, [quoted])).toEqual([{ t: null }])
        })))
    })

    describe("the background cleanup, shared", () => {
      it.effect("three instances on one table run it once per interval between them, and it removes what expired", () =>
        Effect.gen(function*() {
          const tableName = (yield* TestSchema).table()
          yield* Effect.scoped(Effect.gen(function*() {
            const stores = yield* Effect.all(
              [1, 2, 3].map(() => build({ tableName, cleanupInterval: "1 minute" })),
              { concurrency: 3 }
            )
            const keys = yield* Effect.forEach(stores, (store) => store.generate({ expiry: "30 seconds" }))
            // Ten minutes in steps of 5 seconds, letting each wake-up's statements run before the next step.
            for (let step = 0; step < 120; step++) {
              yield* TestClock.adjust("5 seconds")
              yield* realSleep(5)
            }
            yield* realSleep(200)
            const runs = yield* claims(tableName)
            // Each instance wakes every 48–72 s: on their own, 3 × 8–12 runs; shared, runs are ≥ 45 s apart.
            expect(runs).toBeGreaterThanOrEqual(5)
            expect(runs).toBeLessThanOrEqual(14)
            for (const key of keys) expect((yield* Effect.flip(stores[0]!.get(key)))._tag).toBe("NotFound")
          }))
        }))

      it.effect("one instance alone claims every run", () =>
        Effect.gen(function*() {
          const tableName = (yield* TestSchema).table()
          yield* Effect.scoped(Effect.gen(function*() {
            yield* build({ tableName, cleanupInterval: "1 minute" })
            for (let step = 0; step < 120; step++) {
              yield* TestClock.adjust("5 seconds")
              yield* realSleep(5)
            }
            yield* realSleep(200)
            expect(yield* claims(tableName)).toBeGreaterThanOrEqual(8) // every wake-up, 48–72 s apart
          }))
        }))

      it.effect("a table managed by its team without the lease: a warning with its DDL, and cleanup on each instance", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const tableName = (yield* TestSchema).table()
          const target = yield* PgSessionStore.quoteTableName(tableName)
          yield* Effect.scoped(build({ tableName, cleanupInterval: 0 }))
          yield* sql.unsafe(`DROP TABLE ${target.lease}`)
          const { lines, result: key } = yield* withLines(Effect.scoped(Effect.gen(function*() {
            const store = yield* build({ tableName, createTable: false, cleanupInterval: "1 minute" })
            const key = yield* store.generate({ expiry: "10 seconds" })
            yield* TestClock.adjust("2 minutes")
            for (let i = 0; i < 100; i++) {
              const gone = yield* Effect.flip(store.get(key))
              if (gone._tag === "NotFound") break
              yield* TestClock.adjust("1 minute")
              yield* realSleep(10)
            }
            return key
          })))
          expect(lines.filter((line) => line.includes("cleanup lease"))).toHaveLength(1)
          expect(lines.find((line) => line.includes("cleanup lease"))).toContain(`CREATE TABLE IF NOT EXISTS ${target.lease}`)
          const rows = yield* sql.unsafe(`SELECT 1 FROM ${tableName} WHERE id = $1`, [SessionKey.hash(key)])
          expect(rows).toHaveLength(0) // the cleanup ran without the lease
          expect(yield* sql.unsafe(`SELECT to_regclass($1) AS t`, [target.lease])).toEqual([{ t: null }]) // not created
          expect(yield* PgSessionStore.schemaSql({ tableName })).toContain(`CREATE TABLE IF NOT EXISTS ${target.lease}`)
        }))
    })
  })

suite("instances on one table, on @effect/sql-pg's client", ServerPgClient)
suite("instances on one table, on the owned pool", ServerOwnedPool())
