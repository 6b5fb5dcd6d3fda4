/**
 * The PostgreSQL `SessionStore`, on `PgClient` from `@effect/sql-pg`.
 *
 * One table (default `effect_sessions`): `id bytea` primary key holding `SHA-256(key)`, `value text`,
 * `expires_at timestamptz` (indexed), `created_at timestamptz`, and `version bigint` for `modify`'s
 * compare-and-set. Every operation is one statement, one round trip, with bind parameters only.
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, type Scope } from "effect"
import { InvalidConfig, SessionStoreError } from "./SessionError.js"
import { statements } from "./internal/pgStatements.js"
import * as SessionStore from "./SessionStore.js"

/**
 * Options of the PostgreSQL store.
 *
 * @since 0.1.0
 */
export interface Options extends SessionStore.Options {
  /**
   * The table, optionally schema-qualified (`"sessions"`, `"auth.sessions"`). Each part must be an SQL identifier
   * (`[A-Za-z_][A-Za-z0-9_$]*`, at most 63 characters); it is quoted, so it is case-sensitive. Default
   * `"effect_sessions"`.
   */
  readonly tableName?: string | undefined
  /** Create the table and its index (IF NOT EXISTS) when the layer is built. Default `true`. */
  readonly createTable?: boolean | undefined
  /**
   * What a session write waits for. Default `"full"`.
   * - `"full"`: each write waits for its WAL flush (PostgreSQL's default): a committed write survives a crash.
   * - `"relaxed"`: session writes commit with `synchronous_commit = off` (for their own transaction only): they
   *   don't wait for the flush, so a crash of the database server may lose the last fraction of a second of
   *   session writes (at most 3 × `wal_writer_delay`). Never corrupts, never affects other queries.
   * - `"unlogged"`: an `UNLOGGED` table (no WAL at all): fastest, but emptied after a crash (everyone is logged
   *   out) and not replicated to standbys. An existing table is switched in place (`ALTER TABLE … SET UNLOGGED`,
   *   and back with `"full"`/`"relaxed"`), which rewrites it.
   */
  readonly durability?: "full" | "relaxed" | "unlogged" | undefined
}

const identifier = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/

/**
 * Validates a possibly schema-qualified table name and returns its quoted form and its last part.
 *
 * @since 0.1.0
 */
export const quoteTableName = (
  tableName: string
): Effect.Effect<{ readonly quoted: string; readonly table: string }, InvalidConfig> => {
  const parts = tableName.split(".")
  if (parts.length > 2 || !parts.every((part) => identifier.test(part))) {
    return Effect.fail(
      new InvalidConfig({
        option: "tableName",
        reason: `${JSON.stringify(tableName.slice(0, 200))} is not an identifier or schema.identifier`
      })
    )
  }
  return Effect.succeed({ quoted: parts.map((part) => `"${part}"`).join("."), table: parts.at(-1)! })
}

/**
 * Builds the store on the `PgClient` in context, creating the table unless `createTable: false`.
 *
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<
  SessionStore.Service,
  InvalidConfig | SessionStoreError,
  PgClient.PgClient | Scope.Scope
> =>
  Effect.gen(function*() {
    const { quoted, table } = yield* quoteTableName(options.tableName ?? "effect_sessions")
    const sql = yield* PgClient.PgClient
    const durability = options.durability ?? "full"
    if (!["full", "relaxed", "unlogged"].includes(durability)) {
      return yield* new InvalidConfig({ option: "durability", reason: `must be "full", "relaxed" or "unlogged"` })
    }
    const q = statements(quoted, table, durability)
    // An existing table whose persistence does not match is switched in place (it keeps its rows).
    const matchPersistence = Effect.gen(function*() {
      const [row] = yield* sql.unsafe<{ persistence: string }>(q.persistence, [quoted])
      if ((row?.persistence === "u") !== (durability === "unlogged")) yield* sql.unsafe(q.setPersistence)
    })

    const init = options.createTable === false
      ? sql.unsafe(q.probe)
      : sql.withTransaction(
        Effect.all([
          // Serialise concurrent creators: CREATE TABLE IF NOT EXISTS alone can race on the catalog.
          sql.unsafe("SELECT pg_advisory_xact_lock(hashtext($1))", [`effect-session:${quoted}`]),
          sql.unsafe(q.createTable),
          sql.unsafe(q.createIndex),
          matchPersistence
        ], { discard: true })
      )
    yield* Effect.mapError(init, (cause) => new SessionStoreError({ operation: "init", cause }))

    // Our column names must reach us as written, whatever transformResultNames the app's PgClient uses.
    const run = <A extends object = Record<string, unknown>>(statement: string, params: ReadonlyArray<unknown>) =>
      sql.unsafe<A>(statement, params as Array<never>).withoutTransform
    const backend: SessionStore.Backend<unknown> = {
      find: (id) =>
        Effect.map(
          run<{ value: string; expires_at: number; version: string }>(q.find, [id]),
          (rows) => rows[0] && { value: rows[0].value, expiresAt: rows[0].expires_at, version: rows[0].version }
        ),
      insert: (id, value, expiresAt, now) => Effect.asVoid(run(q.insert, [id, value, expiresAt, now])),
      upsert: (id, value, expiresAt, now) => Effect.asVoid(run(q.upsert, [id, value, expiresAt, now])),
      touch: (id, expiresAt, now) =>
        Effect.map(
          run<{ touched: boolean; present: boolean }>(q.touch, [id, expiresAt, now]),
          ([row]) => row?.touched ? "touched" : row?.present ? "expired" : "missing"
        ),
      compareAndSet: (id, version, value, expiresAt, now) =>
        Effect.map(
          run(q.compareAndSet, [id, version, value, expiresAt ?? null, now]),
          (rows) => rows.length === 1
        ),
      remove: (id) => Effect.asVoid(run(q.remove, [id])),
      deleteExpiredBatch: (now, limit) =>
        Effect.map(run<{ deleted: number }>(q.deleteExpiredBatch, [now, limit]), ([row]) => row?.deleted ?? 0)
    }
    return yield* SessionStore.make(backend, options)
  })

/**
 * The store as a layer needing a `PgClient`.
 *
 * @example
 * ```ts
 * import { PgClient } from "@effect/sql-pg"
 * import { Config, Layer } from "effect"
 * import { PgSessionStore } from "effect-session"
 *
 * const Sessions = PgSessionStore.layer({ tableName: "app.sessions" }).pipe(
 *   Layer.provide(PgClient.layerConfig({ url: Config.redacted("DATABASE_URL") }))
 * )
 * ```
 *
 * @since 0.1.0
 */
export const layer = (
  options: Options = {}
): Layer.Layer<SessionStore.SessionStore, InvalidConfig | SessionStoreError, PgClient.PgClient> =>
  Layer.scoped(SessionStore.SessionStore, make(options))
