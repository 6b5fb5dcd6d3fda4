import { SqlClient } from "effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as EmbeddedPostgres from "../../src/EmbeddedPostgres.js"
import { PgSessionStore, SessionStore } from "../../src/index.js"
import { withSchema } from "../support/database.js"
import { postgresSuite } from "../support/postgres.js"

// One connection to spare for the suite's second client.
postgresSuite("PgSessionStore on EmbeddedPostgres", withSchema(EmbeddedPostgres.layer({ maxConnections: 5, poolSize: 4 })))

describe("EmbeddedPostgres", () => {
  it.effect("a pool larger than the server's maxConnections is refused", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Layer.build(EmbeddedPostgres.layer({ maxConnections: 2, poolSize: 3 }))))
      expect(error).toMatchObject({ _tag: "InvalidConfig", option: "poolSize" })
      const zero = yield* Effect.flip(Effect.scoped(Layer.build(EmbeddedPostgres.layer({ maxConnections: 0 }))))
      expect(zero).toMatchObject({ _tag: "InvalidConfig", option: "maxConnections" })
    }))

  it.effect("the full pool serves concurrent queries correctly", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const results = yield* Effect.forEach(
        Array.from({ length: 300 }, (_, i) => i),
        (i) => sql.unsafe<{ n: number; s: string }>("SELECT $1::int AS n, repeat('x', $1::int % 50) AS s", [i]),
        { concurrency: "unbounded" }
      )
      results.forEach((rows, i) => expect(rows[0]).toEqual({ n: i, s: "x".repeat(i % 50) }))
      const connections = yield* Effect.forEach(
        Array.from({ length: 8 }),
        () => sql.withTransaction(sql.unsafe<{ pid: number }>("SELECT pg_backend_pid() AS pid")),
        { concurrency: "unbounded" }
      )
      expect(connections).toHaveLength(8)
    }).pipe(Effect.provide(EmbeddedPostgres.layer({ maxConnections: 3 }))))

  it.live("an on-disk database survives a restart", () =>
    Effect.gen(function*() {
      const dataDir = mkdtempSync(join(tmpdir(), "effect-session-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dataDir, { recursive: true, force: true })))
      const store = (f: (s: SessionStore.Service) => Effect.Effect<string, unknown>) =>
        Effect.flatMap(SessionStore.SessionStore, f).pipe(
          Effect.provide(PgSessionStore.layer().pipe(Layer.provide(EmbeddedPostgres.layer({ dataDir })))),
          Effect.scoped
        )
      const key = yield* store((s) => s.generate({ value: "survives" }))
      const value = yield* store((s) => Effect.map(s.get(key), (r) => r.value))
      expect(value).toBe("survives")
    }).pipe(Effect.scoped))
})
