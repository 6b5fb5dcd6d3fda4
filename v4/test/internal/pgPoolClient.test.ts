/**
 * The PgClient on the owned pool (internal/pgPoolClient.ts, the Effect 4 line's own: `@effect/sql-pg` 4 has no
 * `PgClient.fromPool`): what an app does with it beyond the store's suites, on the test server.
 */
import { PgClient } from "@effect/sql-pg"
import { expect, layer } from "@effect/vitest"
import { Effect, Fiber, Queue, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import { ServerOwnedPool } from "../support/database.js"

layer(ServerOwnedPool({ maxConnections: 2 }), { timeout: 60_000 })("the PgClient on the owned pool", (it) => {
  it.effect("says where it connects, and its config builds a PgClient of @effect/sql-pg's own", () =>
    Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      expect(sql.config.host).toBeTypeOf("string")
      expect(sql.config.applicationName).toBe("effect-session")
      const rows = yield* Effect.flatMap(PgClient.PgClient, (other) => other`SELECT 1 AS one`).pipe(
        Effect.provide(PgClient.layer({ ...sql.config, maxConnections: 1 }))
      )
      expect(rows).toEqual([{ one: 1 }])
    }))

  it.effect("json, values and streams", () =>
    Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      expect(yield* sql`SELECT ${sql.json({ a: [1, 2], b: "x" })}::jsonb AS j`).toEqual([{ j: { a: [1, 2], b: "x" } }])
      expect(yield* sql`SELECT 1 AS a, 2 AS b`.values).toEqual([[1, 2]])
      expect(yield* Stream.runCollect(sql`SELECT generate_series(1, 3) AS n`.stream)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }])
    }))

  it.effect("transactions and savepoints run on one connection of the pool", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`CREATE TEMP TABLE t (x int) ON COMMIT DROP`
        yield* sql`INSERT INTO t VALUES (1)`
        yield* Effect.ignore(sql.withTransaction(Effect.andThen(sql`INSERT INTO t VALUES (2)`, Effect.fail("undo"))))
        return yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM t`
      }))
      expect(rows).toEqual([{ n: 1 }])
    }))

  it.effect("a server error is a SqlError whose reason is classified and carries pg's error", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const error = yield* Effect.flip(sql`SELECT * FROM no_such_table_here`)
      expect(error.reason._tag).toBe("SqlSyntaxError")
      expect((error.reason.cause as { code?: string }).code).toBe("42P01")
    }))

  it.effect("listen and notify", () =>
    Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const channel = `es_${Math.random().toString(36).slice(2, 10)}`
      const notifications = yield* sql.listen(channel)
      yield* sql.notify(channel, "hello")
      expect(yield* Queue.take(notifications)).toMatchObject({ channel, payload: "hello" })
    }).pipe(Effect.scoped))

  it.effect("an interrupted query's connection is not reused, and the pool keeps serving", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pid = Effect.map(sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`, ([row]) => row!.pid)
      const before = yield* pid
      const sleeping = yield* Effect.forkChild(sql.withTransaction(Effect.andThen(pid, sql`SELECT pg_sleep(5)`)))
      yield* Effect.sleep("200 millis")
      const started = Date.now()
      yield* Fiber.interrupt(sleeping)
      expect(Date.now() - started).toBeLessThan(1_000)
      const after = yield* Effect.forEach([1, 2, 3, 4], () => pid, { concurrency: 2 })
      expect(after).toHaveLength(4)
      expect(after.every((p) => typeof p === "number")).toBe(true)
      expect(before).toBeTypeOf("number")
    }).pipe(TestClock.withLive))
})
