import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { describe, expect, layer } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Layer, Logger, Scope, String } from "effect"
import { TestClock } from "effect/testing"
import { PgSessionStore, SessionKey, SessionStore } from "../../src/index.js"
import { conformance, eventuallyFailsWith } from "./conformance.js"
import { TestSchema } from "./database.js"

type Shared = PgClient.PgClient | SqlClient.SqlClient | TestSchema

/** A fresh table in the file's schema for each store. */
const freshStore = (options: PgSessionStore.Options = {}) =>
  Layer.unwrap(Effect.map(TestSchema, (schema) => PgSessionStore.layer({ tableName: schema.table(), ...options })))

const build = (options: PgSessionStore.Options) =>
  Effect.map(Layer.build(PgSessionStore.layer(options)), (context) => Context.get(context, SessionStore.SessionStore))

/** The conformance suite with `durability: "relaxed"` and `"unlogged"` (npm run test:backends). */
export const durabilitySuites = <E>(name: string, shared: Layer.Layer<Shared, E>) => {
  conformance(`${name}, durability relaxed`, shared, (options) => freshStore({ ...options, durability: "relaxed" }))
  conformance(`${name}, durability unlogged`, shared, (options) => freshStore({ ...options, durability: "unlogged" }))
}

/** The conformance suite plus the PostgreSQL-only tests, against the given client. */
export const postgresSuite = <E>(name: string, shared: Layer.Layer<Shared, E>) => {
  conformance(name, shared, (options) => freshStore(options))

  layer(shared, { timeout: 60_000 })(`${name}: PostgreSQL only`, (it) => {
    it.effect("the table never contains the raw key, in any column", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const tableName = (yield* TestSchema).table()
        const store = yield* Effect.scoped(Effect.flatMap(build({ tableName }), (s) =>
          Effect.gen(function*() {
            const keys = yield* Effect.forEach([1, 2, 3], (i) => s.generate({ value: `value ${i}` }))
            yield* s.set(keys[0]!, "updated")
            yield* s.modify(keys[1]!, (v) => v + "!")
            return keys
          })))
        const rows = yield* sql.unsafe<{ row: string }>(`SELECT t::text AS row FROM ${tableName} t`)
        expect(rows).toHaveLength(3)
        for (const key of store) {
          const hex = Buffer.from(key, "base64url").toString("hex")
          for (const { row } of rows) {
            expect(row).not.toContain(key)
            expect(row).not.toContain(hex)
          }
          const hashHex = Buffer.from(SessionKey.hash(key)).toString("hex")
          expect(rows.some(({ row }) => row.includes(hashHex))).toBe(true)
        }
      }))

    it.effect("the cleanup fiber stops when its scope closes", () =>
      Effect.gen(function*() {
        const tableName = (yield* TestSchema).table()
        const scope = yield* Scope.make()
        const first = yield* build({ tableName, cleanupInterval: "1 minute" }).pipe(Scope.provide(scope))
        const key = yield* first.generate({ expiry: "10 seconds" })
        yield* Scope.close(scope, Exit.void)
        yield* TestClock.adjust("1 hour")
        const second = yield* Effect.scoped(Effect.flatMap(build({ tableName, cleanupInterval: 0 }), (s) => Effect.flip(s.get(key))))
        expect(second._tag).toBe("Expired")
      }))

    it.effect("the cleanup fiber runs while its scope is open", () =>
      Effect.gen(function*() {
        const tableName = (yield* TestSchema).table()
        yield* Effect.scoped(Effect.gen(function*() {
          const s = yield* build({ tableName, cleanupInterval: "1 minute" })
          const key = yield* s.generate({ expiry: "10 seconds" })
          yield* TestClock.adjust("2 minutes")
          expect((yield* eventuallyFailsWith(s.get(key), "NotFound", "1 minute"))._tag).toBe("NotFound")
        }))
      }))

    it.effect("a second layer on an existing table keeps its rows", () =>
      Effect.gen(function*() {
        const tableName = (yield* TestSchema).table()
        const key = yield* Effect.scoped(Effect.flatMap(build({ tableName }), (s) => s.generate({ value: "persisted" })))
        const value = yield* Effect.scoped(Effect.flatMap(build({ tableName }), (s) => s.get(key)))
        expect(value.value).toBe("persisted")
      }))

    it.effect("two layers created at once on a new table both succeed", () =>
      Effect.gen(function*() {
        const tableName = (yield* TestSchema).table()
        yield* Effect.all([build({ tableName }), build({ tableName }), build({ tableName })], { concurrency: 3 }).pipe(Effect.scoped)
      }))

    it.effect("createTable: false fails clearly on a missing table and works on an existing one", () =>
      Effect.gen(function*() {
        const tableName = (yield* TestSchema).table()
        const error = yield* Effect.flip(Effect.scoped(build({ tableName, createTable: false })))
        expect(error).toMatchObject({ _tag: "InvalidConfig", option: "tableName" })
        expect(error.message).toContain("does not exist")
        yield* Effect.scoped(build({ tableName }))
        yield* Effect.scoped(Effect.flatMap(build({ tableName, createTable: false }), (s) => s.generate()))
      }))

    it.effect("an unqualified table name lands in the search path, quoted", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const schema = (yield* TestSchema).name
        const tableName = `MixedCase_${Math.random().toString(36).slice(2, 8)}`
        yield* Effect.scoped(build({ tableName }))
        const found = yield* sql.unsafe<{ n: number }>(
          `SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = $1`,
          [tableName]
        )
        expect(found[0]?.n).toBe(1)
        yield* sql.unsafe(`DROP TABLE "${tableName}"`)
        expect(schema).toMatch(/^es_test_/)
      }))

    it.effect("relaxed durability turns synchronous_commit off for the write's own transaction only", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const tableName = (yield* TestSchema).table()
        const setting = () =>
          Effect.map(sql.unsafe<{ s: string }>("SELECT current_setting('synchronous_commit') AS s"), ([row]) => row!.s)
        yield* Effect.scoped(Effect.gen(function*() {
          const relaxed = yield* build({ tableName, durability: "relaxed" })
          const key = yield* relaxed.generate()
          const inTransaction = yield* sql.withTransaction(
            Effect.gen(function*() {
              const before = yield* setting()
              yield* relaxed.set(key, "x")
              return [before, yield* setting()]
            })
          )
          expect(inTransaction).toEqual(["on", "off"])
          const full = yield* build({ tableName, durability: "full" })
          const unchanged = yield* sql.withTransaction(Effect.andThen(full.set(key, "y"), setting()))
          expect(unchanged).toBe("on")
        }))
      }))

    it.effect("unlogged durability creates an UNLOGGED table; a mismatch is a warning, never a rewrite", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const tableName = (yield* TestSchema).table()
        const persistence = Effect.map(
          sql.unsafe<{ p: string }>("SELECT relpersistence AS p FROM pg_class WHERE oid = $1::regclass", [tableName]),
          ([row]) => row!.p
        )
        const relfilenode = Effect.map(
          sql.unsafe<{ f: number }>("SELECT relfilenode AS f FROM pg_class WHERE oid = $1::regclass", [tableName]),
          ([row]) => row!.f
        )
        const key = yield* Effect.scoped(Effect.flatMap(build({ tableName, durability: "unlogged" }), (s) => s.generate({ value: "kept" })))
        expect(yield* persistence).toBe("u")
        const before = yield* relfilenode
        const logged: Array<string> = []
        const value = yield* Effect.scoped(Effect.flatMap(build({ tableName }), (s) => s.get(key))).pipe(
          Effect.provide(Logger.layer([Logger.make(({ message }) => logged.push(`${message}`))]))
        )
        expect(value.value).toBe("kept")
        expect(yield* persistence).toBe("u") // not switched
        expect(yield* relfilenode).toBe(before) // not rewritten
        expect(logged.join("\n")).toMatch(/is UNLOGGED but durability is "full".*ALTER TABLE .* SET LOGGED/)
      }))

    it.effect("works under a PgClient that transforms result names (snake_case to camelCase)", () =>
      Effect.gen(function*() {
        const { config } = yield* PgClient.PgClient
        const tableName = (yield* TestSchema).table()
        const camel = PgClient.layer({ ...config, maxConnections: 1, transformResultNames: String.snakeToCamel })
        yield* Effect.gen(function*() {
          const s = yield* SessionStore.SessionStore
          const key = yield* s.generate({ value: "v", expiry: "1 minute" })
          expect(Duration.toMillis((yield* s.get(key)).expiresIn)).toBe(60_000)
          expect(yield* s.modify(key, (v) => v + "w")).toBe("vw")
          yield* s.touch(key)
          expect(yield* s.deleteExpired).toBe(0)
        }).pipe(Effect.provide(PgSessionStore.layer({ tableName }).pipe(Layer.provide(camel))), Effect.scoped)
      }))

    it.effect("rotation is atomic: when the new row cannot be written, the old session is exactly as it was", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const tableName = (yield* TestSchema).table()
        yield* Effect.scoped(Effect.gen(function*() {
          const s = yield* build({ tableName, cleanupInterval: 0 })
          const key = yield* s.generate({ value: "before", expiry: "1 minute" })
          const [name] = tableName.split(".")
          yield* sql.unsafe(`CREATE FUNCTION ${name}.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'injected failure'; END $$`)
          yield* sql.unsafe(`CREATE TRIGGER refuse_poison BEFORE INSERT ON ${tableName}
            FOR EACH ROW WHEN (NEW.value = 'poison') EXECUTE FUNCTION ${name}.refuse_poison()`)
          const error = yield* Effect.flip(s.rotate(key, () => "poison", { staleTimeout: "3 seconds" }))
          expect(error).toMatchObject({ _tag: "SessionStoreError", operation: "rotate" })
          const after = yield* s.get(key)
          expect(after).toMatchObject({ value: "before", rotated: false })
          expect(Duration.toMillis(after.expiresIn)).toBe(60_000)
          yield* TestClock.adjust("10 seconds") // past the stale period it would have had
          expect(yield* s.get(key)).toMatchObject({ value: "before", rotated: false })
          expect(yield* s.modify(key, (v) => v + "!")).toBe("before!")
          const rows = yield* sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM ${tableName}`)
          expect(rows[0]!.n).toBe(1)
        }))
      }))

    it.effect("a 63-character table name still gets its expires_at index", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const schema = (yield* TestSchema).name
        const table = `t${"x".repeat(62)}`
        yield* Effect.scoped(build({ tableName: `${schema}.${table}` }))
        const indexes = yield* sql.unsafe<{ name: string; definition: string }>(
          `SELECT indexname AS name, indexdef AS definition FROM pg_indexes WHERE schemaname = $1 AND tablename = $2`,
          [schema, table]
        )
        const expiry = indexes.filter((index) => index.definition.includes("(expires_at)"))
        expect(expiry).toHaveLength(1)
        expect(expiry[0]!.name).not.toBe(table)
        expect(Buffer.byteLength(expiry[0]!.name)).toBeLessThanOrEqual(63)
        expect(indexes.filter((index) => index.definition.includes("(subject, audience)"))).toHaveLength(1)
        yield* Effect.scoped(build({ tableName: `${schema}.${table}` })) // idempotent
        expect(yield* sql.unsafe(`SELECT 1 FROM pg_indexes WHERE schemaname = $1 AND tablename = $2`, [schema, table]))
          .toHaveLength(4) // the primary key, expires_at, (subject, audience) and the session's family
      }))

    it.effect("a schema that does not exist is InvalidConfig, with or without createTable", () =>
      Effect.gen(function*() {
        for (const createTable of [true, false]) {
          const error = yield* Effect.flip(Effect.scoped(build({ tableName: "no_such_schema.sessions", createTable })))
          expect(error).toMatchObject({ _tag: "InvalidConfig", option: "tableName" })
          expect(error.message).toContain(`schema "no_such_schema" does not exist`)
        }
      }))

    it.effect("a table created by version 0.1 is upgraded in place at start-up, keeping its sessions", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const tableName = (yield* TestSchema).table()
        // The 0.1 schema, and a session written the way 0.1 wrote it.
        yield* sql.unsafe(`CREATE TABLE ${tableName} (
          id bytea PRIMARY KEY, value text NOT NULL, expires_at timestamptz NOT NULL,
          created_at timestamptz NOT NULL, version bigint NOT NULL DEFAULT 0)`)
        yield* sql.unsafe(`CREATE INDEX ON ${tableName} (expires_at)`)
        const key = SessionKey.generate()
        yield* sql.unsafe(
          `INSERT INTO ${tableName} (id, value, expires_at, created_at) VALUES ($1, 'from 0.1', to_timestamp(4102444800), to_timestamp(0))`,
          [SessionKey.hash(key)]
        )
        const refused = yield* Effect.flip(Effect.scoped(build({ tableName, createTable: false })))
        expect(refused).toMatchObject({ _tag: "InvalidConfig", option: "createTable" })
        expect(refused.message).toContain(`ADD COLUMN IF NOT EXISTS rotated boolean NOT NULL DEFAULT false`)
        yield* Effect.scoped(Effect.gen(function*() {
          const s = yield* build({ tableName })
          expect(yield* s.get(key)).toMatchObject({ value: "from 0.1", rotated: false })
          expect(yield* s.modify(key, (v) => v + ", upgraded")).toBe("from 0.1, upgraded")
          const rotation = yield* s.rotate(key, (v) => v, { subject: "user-1" })
          expect((yield* s.get(rotation.key)).value).toBe("from 0.1, upgraded")
          expect((yield* s.list("user-1")).map((info) => info.id)).toEqual([SessionKey.id(key)]) // its id across rotations
        }))
        const [tableSchema, table] = tableName.split(".")
        const indexes = yield* sql.unsafe<{ definition: string }>(
          `SELECT indexdef AS definition FROM pg_indexes WHERE schemaname = $1 AND tablename = $2`,
          [tableSchema, table]
        )
        expect(indexes.some((index) => index.definition.includes("(subject, audience)"))).toBe(true)
        yield* Effect.scoped(build({ tableName, createTable: false })) // now complete
        const ddl = yield* PgSessionStore.schemaSql({ tableName })
        expect(ddl).toContain("rotated boolean NOT NULL DEFAULT false")
      }))

    it.effect("inside the app's transaction, store writes join it: a rollback undoes them", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const tableName = (yield* TestSchema).table()
        yield* Effect.scoped(Effect.gen(function*() {
          const s = yield* build({ tableName, cleanupInterval: 0 })
          const key = yield* s.generate({ value: "0" })
          const rolledBack = yield* Effect.flip(sql.withTransaction(Effect.gen(function*() {
            yield* s.modify(key, (n) => `${Number(n) + 1}`)
            yield* s.set(key, "set in the transaction")
            yield* s.generate({ value: "created in the transaction" })
            expect((yield* s.get(key)).value).toBe("set in the transaction") // seen inside
            return yield* Effect.fail("roll back")
          })))
          expect(rolledBack).toBe("roll back")
          expect((yield* s.get(key)).value).toBe("0")
          const rows = yield* sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM ${tableName}`)
          expect(rows[0]!.n).toBe(1)
          // Committed, the same writes stay; concurrent writes from outside the transaction are not carried into it.
          yield* sql.withTransaction(s.modify(key, (n) => `${Number(n) + 1}`))
          yield* Effect.forEach([1, 2, 3], () => s.modify(key, (n) => `${Number(n) + 1}`), { concurrency: 3 })
          expect((yield* s.get(key)).value).toBe("4")
        }))
      }))

    it.effect("an unknown durability is InvalidConfig", () =>
      Effect.gen(function*() {
        const tableName = (yield* TestSchema).table()
        const error = yield* Effect.flip(Effect.scoped(build({ tableName, durability: "fast" as never })))
        expect(error).toMatchObject({ _tag: "InvalidConfig", option: "durability" })
      }))

    describe("invalid table names", () => {
      for (const tableName of [
        "",
        "1sessions",
        "a.b.c",
        "sessions; DROP TABLE users; --",
        "sessions\"; DROP TABLE users; --",
        "ses sions",
        "x".repeat(64),
        "schema.",
        ".table"
      ]) {
        it.effect(`rejects ${JSON.stringify(tableName.slice(0, 40))} with InvalidConfig, touching nothing`, () =>
          Effect.gen(function*() {
            const error = yield* Effect.flip(Effect.scoped(build({ tableName })))
            expect(error).toMatchObject({ _tag: "InvalidConfig", option: "tableName" })
          }))
      }
    })
  })
}
