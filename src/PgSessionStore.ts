/**
 * The PostgreSQL `SessionStore`, on `PgClient` from `@effect/sql-pg`.
 *
 * One table (default `effect_sessions`): `id bytea` primary key holding `SHA-256(key)`, `value text`,
 * `expires_at timestamptz` (indexed), `created_at timestamptz`, `version bigint` for compare-and-set, and
 * `rotated boolean` for keys rotated away, and the owner: `subject`, `audience` (partially indexed), `metadata` and
 * `last_seen_at`. Every operation is one statement, one round trip, with bind parameters only; a rotation too.
 *
 * `layerPool` builds the connection pool itself (and provides the app a `PgClient` on it): the store then runs
 * named prepared statements on it, and a connection that outlives a deadline is discarded. `layer` runs on any
 * `PgClient` through `@effect/sql`.
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import { SqlClient } from "@effect/sql"
import { Cause, Config, type ConfigError, type Context, Effect, Layer, type Scope } from "effect"
import { durationOption, oneOf } from "./internal/options.js"
import * as PgPool from "./internal/pgPool.js"
import { columns, statements } from "./internal/pgStatements.js"
import { InvalidConfig, SessionStoreError } from "./SessionError.js"
import * as SessionStore from "./SessionStore.js"

/**
 * Options of the PostgreSQL store.
 *
 * @since 0.1.0
 * @category options
 */
export interface Options extends SessionStore.Options {
  /**
   * The table, optionally schema-qualified (`"sessions"`, `"auth.sessions"`). Each part must be an SQL identifier
   * (`[A-Za-z_][A-Za-z0-9_$]*`, at most 63 characters); it is quoted, so it is case-sensitive. A schema must
   * exist. Default `"effect_sessions"`.
   */
  readonly tableName?: string | undefined
  /**
   * Create the table and its index (IF NOT EXISTS) when the layer is built, and add the columns a table created by
   * an earlier version lacks (a catalog-only change). Default `true`. With `false` the layer only checks the table.
   */
  readonly createTable?: boolean | undefined
  /**
   * What a session write waits for. Default `"full"`.
   * - `"full"`: each write waits for its WAL flush (PostgreSQL's default): a committed write survives a crash.
   * - `"relaxed"`: session writes commit with `synchronous_commit = off` (for their own transaction only): they
   *   don't wait for the flush, so a crash of the database server may lose the last fraction of a second of
   *   session writes (at most 3 × `wal_writer_delay`). Never corrupts, never affects other queries.
   * - `"unlogged"`: a new table is created `UNLOGGED` (no WAL at all): fastest, but emptied after a crash
   *   (everyone is logged out) and not replicated to standbys.
   *
   * An existing table is never altered to match: start-up logs a warning with the one-off command instead.
   */
  readonly durability?: "full" | "relaxed" | "unlogged" | undefined
}

/**
 * Options of {@link layerPool}: the connection and pool settings of `PgClient.layer` plus deadlines, and the
 * store's options.
 *
 * @since 0.2.0
 * @category options
 */
export interface PoolOptions extends PgPool.PoolOptions, Options {}

const identifier = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/

/**
 * Validates a possibly schema-qualified table name and returns its quoted form, its last part and its schema.
 *
 * @since 0.1.0
 * @category utils
 */
export const quoteTableName = (
  tableName: string
): Effect.Effect<
  { readonly quoted: string; readonly table: string; readonly schema: string | undefined },
  InvalidConfig
> => {
  const parts = tableName.split(".")
  if (parts.length > 2 || !parts.every((part) => identifier.test(part))) {
    return Effect.fail(
      new InvalidConfig({
        option: "tableName",
        reason: `${JSON.stringify(tableName.slice(0, 200))} is not an identifier or schema.identifier`
      })
    )
  }
  return Effect.succeed({
    quoted: parts.map((part) => `"${part}"`).join("."),
    table: parts.at(-1)!,
    schema: parts.length === 2 ? parts[0] : undefined
  })
}

type Statements = ReturnType<typeof statements>

/**
 * Checks the table, creating or upgrading it unless `createTable: false`. Locks nothing beyond the catalog: the
 * column and index changes run only when something is missing, under an advisory lock and a lock timeout.
 */
const init = (
  sql: PgClient.PgClient,
  q: Statements,
  target: { readonly quoted: string; readonly schema: string | undefined },
  options: Options
) =>
  Effect.gen(function*() {
    const createTable = options.createTable !== false
    if (target.schema !== undefined) {
      const [schema] = yield* sql.unsafe<{ present: boolean }>(q.schemaExists, [target.schema]).withoutTransform
      if (schema?.present !== true) {
        return yield* new InvalidConfig({ option: "tableName", reason: `schema "${target.schema}" does not exist` })
      }
    }
    const present = Effect.map(
      sql.unsafe<{ name: string }>(q.tableColumns, [target.quoted]).withoutTransform,
      (rows) => new Set(rows.map((row) => row.name))
    )
    const missingColumns = (names: ReadonlySet<string>) => columns.map(([name]) => name).filter((n) => !names.has(n))
    const upgrade = Effect.gen(function*() {
      yield* sql.unsafe("SELECT pg_advisory_xact_lock(hashtext($1))", [`effect-session:${target.quoted}`])
      yield* sql.unsafe("SET LOCAL lock_timeout = '10s'")
      yield* sql.unsafe(q.createTable)
      const missing = missingColumns(yield* present)
      if (missing.some((name) => !q.upgradable(name))) return missing
      for (const name of missing) yield* sql.unsafe(q.addColumn(name))
      const indexes = new Set(
        (yield* sql.unsafe<{ name: string }>(q.tableIndexes, [target.quoted]).withoutTransform).map((i) => i.name)
      )
      for (const [name, ddl] of q.indexes) if (!indexes.has(name)) yield* sql.unsafe(ddl)
      return []
    })
    const missing = createTable ? yield* sql.withTransaction(upgrade) : missingColumns(yield* present)
    if (missing.includes("id")) {
      return yield* new InvalidConfig({
        option: "tableName",
        reason: `table ${target.quoted} does not exist (createTable is false; see PgSessionStore.schemaSql)`
      })
    }
    if (missing.some((name) => !q.upgradable(name))) {
      return yield* new InvalidConfig({
        option: "tableName",
        reason: `table ${target.quoted} is not a session table: it lacks ${missing.join(", ")}`
      })
    }
    if (missing.length > 0) {
      return yield* new InvalidConfig({
        option: "createTable",
        reason: `table ${target.quoted} lacks column(s) ${missing.join(", ")}; add them with: ${
          missing.map((name) => q.addColumn(name)).join("; ")
        } (or build the layer with createTable: true, which does it)`
      })
    }
    const [row] = yield* sql.unsafe<{ persistence: string }>(q.persistence, [target.quoted]).withoutTransform
    const unlogged = row?.persistence === "u"
    if (unlogged !== (options.durability === "unlogged")) {
      yield* Effect.logWarning(
        `table ${target.quoted} is ${unlogged ? "UNLOGGED" : "LOGGED"} but durability is "${
          options.durability ?? "full"
        }"; start-up never rewrites a table. To switch, run once (it rewrites the table under an exclusive lock): ${q.setPersistence}`
      ).pipe(Effect.annotateLogs("service", "effect-session/PgSessionStore"))
    }
  }).pipe(
    Effect.catchTag("SqlError", (cause) => Effect.fail(new SessionStoreError({ operation: "init", cause })))
  )

/** Runs one of the store's statements within the deadline and returns its rows. */
type Run = <A extends object>(statement: string, params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<A>, unknown>

/**
 * What a conditional update (`touch`, `setOwner`) did: `done` if it changed the row; else whether the row was
 * rotated, expired (present but not changed) or missing.
 */
const outcomeOf = <Done extends string>(
  row: { readonly changed: boolean; readonly rotated: boolean | null } | undefined,
  done: Done
): Done | "rotated" | "expired" | "missing" =>
  row?.changed ? done : row?.rotated === true ? "rotated" : row?.rotated === false ? "expired" : "missing"

/** Whether `fiber` runs inside an `@effect/sql` transaction (one context lookup: this is on every statement). */
const inTransactionOf = (fiber: { readonly currentContext: Context.Context<never> }) =>
  fiber.currentContext.unsafeMap.has(SqlClient.TransactionConnection.key)

/** Whether the calling fiber runs inside an `@effect/sql` transaction. */
const inTransaction = Effect.withFiberRuntime<boolean>((fiber) => Effect.succeed(inTransactionOf(fiber)))

/**
 * On a pool this library owns: named prepared statements (unless turned off), reads on the pipelined connections
 * and writes on the pool; inside the app's transaction, on the transaction's connection, so the statement joins it.
 */
const onPool = (owned: PgPool.OwnedPool, q: Statements, viaClient: Run, timeout: number): Run => {
  const names = new Map<string, string | undefined>()
  for (const text of Object.values(q)) {
    if (typeof text === "string") names.set(text, owned.preparedStatements ? PgPool.statementName(text) : undefined)
  }
  const { pipeline, pool } = owned
  return (statement, params) =>
    Effect.withFiberRuntime((fiber) => {
      if (inTransactionOf(fiber)) return viaClient(statement, params)
      const name = names.get(statement)
      return pipeline !== undefined && statement === q.find
        ? pipeline.query(name, statement, params, timeout)
        : PgPool.query(pool, name, statement, params, timeout)
    })
}

/**
 * On any `PgClient`: through `@effect/sql`, with our column names kept as written whatever `transformResultNames`
 * the app uses. Disconnected, so a deadline returns at once even while the driver cancels the query.
 */
const onClient = (sql: PgClient.PgClient, timeout: number): Run => (statement, params) =>
  Effect.timeoutFail(Effect.interruptible(Effect.disconnect(sql.unsafe<any>(statement, params as Array<never>).withoutTransform)), {
    duration: timeout,
    onTimeout: () => new Cause.TimeoutException(`no answer within ${timeout} ms`)
  })

/**
 * Builds the store on the `PgClient` in context, creating or upgrading the table unless `createTable: false`. On a
 * `PgClient` built by {@link layerPool} (or `EmbeddedPostgres`) it takes the fast path.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<
  SessionStore.Service,
  InvalidConfig | SessionStoreError,
  PgClient.PgClient | Scope.Scope
> =>
  Effect.gen(function*() {
    const target = yield* quoteTableName(options.tableName ?? "effect_sessions")
    const durability = yield* oneOf("durability", options.durability ?? "full", ["full", "relaxed", "unlogged"])
    const sql = yield* PgClient.PgClient
    const q = statements(target.quoted, target.table, durability)
    yield* init(sql, q, target, options)

    const owned = PgPool.poolOf(sql)
    const timeout = yield* durationOption("timeout", options.timeout ?? SessionStore.defaults.timeout, 1)
    const viaClient = onClient(sql, timeout)
    const run = owned === undefined ? viaClient : onPool(owned, q, viaClient, timeout)
    type Info = {
      id: Uint8Array
      subject: string | null
      audience: string | null
      metadata: string | null
      created_at: number
      expires_at: number
      last_seen_at: number
    }
    const info = (row: Info): SessionStore.InfoRow => ({
      id: row.id,
      subject: row.subject,
      audience: row.audience,
      metadata: row.metadata,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      lastSeenAt: row.last_seen_at
    })
    const backend: SessionStore.Backend<unknown> = {
      name: "postgres",
      inTransaction,
      enforcesDeadline: true,
      find: (id) =>
        Effect.map(
          run<{
            value: string
            expires_at: number
            version: string
            rotated: boolean
            subject: string | null
            audience: string | null
          }>(q.find, [id]),
          ([row]) =>
            row && {
              value: row.value,
              expiresAt: row.expires_at,
              version: row.version,
              rotated: row.rotated,
              subject: row.subject,
              audience: row.audience
            }
        ),
      insert: (id, value, expiresAt, now, owner) =>
        Effect.asVoid(run(q.insert, [id, value, expiresAt, now, owner.subject, owner.audience, owner.metadata])),
      upsert: (id, value, expiresAt, now) =>
        Effect.map(run(q.upsert, [id, value, expiresAt, now]), (rows) => rows.length === 1 ? "written" : "rotated"),
      touch: (id, expiresAt, now) =>
        Effect.map(
          run<{ changed: boolean; rotated: boolean | null }>(q.touch, [id, expiresAt, now]),
          ([row]) => outcomeOf(row, "touched")
        ),
      compareAndSet: (id, version, value, expiresAt, now, owner) =>
        Effect.map(
          run<{ version: string }>(
            owner === undefined ? q.compareAndSet : q.compareAndSetOwner,
            owner === undefined
              ? [id, version, value, expiresAt ?? null, now]
              : [id, version, value, expiresAt ?? null, now, owner.subject, owner.audience, owner.metadata]
          ),
          ([row]) => row?.version
        ),
      rotate: (id, version, newId, value, expiresAt, staleExpiresAt, now, owner) =>
        Effect.map(
          run<{ rotated: number }>(q.rotate, [
            id,
            version,
            newId,
            value,
            expiresAt,
            staleExpiresAt,
            now,
            owner !== undefined,
            owner?.subject ?? null,
            owner?.audience ?? null,
            owner?.metadata ?? null
          ]),
          ([row]) => row?.rotated === 1
        ),
      setOwner: (id, owner, now) =>
        Effect.map(
          run<{ changed: boolean; rotated: boolean | null }>(q.setOwner, [id, owner.subject, owner.audience, owner.metadata, now]),
          ([row]) => outcomeOf(row, "set")
        ),
      list: (subject, audience, now, limit) =>
        Effect.map(run<Info>(q.list, [subject, audience ?? null, now, limit]), (rows) => rows.map(info)),
      page: (after, now, limit) => Effect.map(run<Info>(q.page, [after ?? null, now, limit]), (rows) => rows.map(info)),
      revoke: (id, subject) => Effect.map(run(q.revoke, [id, subject ?? null]), (rows) => rows.length > 0),
      revokeSubject: (subject, audience, except, now) =>
        Effect.map(
          run<{ revoked: number }>(q.revokeSubject, [subject, audience ?? null, except ?? null, now]),
          ([row]) => row?.revoked ?? 0
        ),
      remove: (id) => Effect.asVoid(run(q.remove, [id])),
      deleteExpiredBatch: (now, limit) =>
        Effect.map(run<{ deleted: number }>(q.deleteExpiredBatch, [now, limit]), ([row]) => row?.deleted ?? 0)
    }
    return yield* SessionStore.make(backend, options)
  })

/**
 * The store as a layer on the `PgClient` in context (any `PgClient`, e.g. from `PgClient.layerConfig`).
 *
 * Prefer {@link layerPool} when the library may build the pool: only there is a connection that outlived its
 * deadline discarded (`@effect/sql-pg` returns an interrupted connection to its pool).
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
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<SessionStore.SessionStore, InvalidConfig | SessionStoreError, PgClient.PgClient> =>
  Layer.scoped(SessionStore.SessionStore, make(options))

/**
 * The store and a `PgClient` for the app, on one connection pool this library builds: TCP keepalive, a bounded
 * wait for a connection, server-side `statement_timeout` and `lock_timeout`, connections that outlive a deadline
 * discarded, and the store's statements prepared once per connection. The recommended way to run in production.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import { PgSessionStore } from "effect-session"
 *
 * // Provides SessionStore, PgClient and SqlClient
 * const Database = PgSessionStore.layerPool({
 *   url: Redacted.make(process.env.DATABASE_URL!),
 *   maxConnections: 10,
 *   timeout: "3 seconds"
 * })
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerPool = (
  options: PoolOptions = {}
): Layer.Layer<
  SessionStore.SessionStore | PgClient.PgClient | SqlClient.SqlClient,
  InvalidConfig | SessionStoreError
> => layer(options).pipe(Layer.provideMerge(PgPool.layerClient(options)))

/**
 * {@link layer} with its options read through `Config`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { PgSessionStore } from "effect-session"
 *
 * const Sessions = PgSessionStore.layerConfig({
 *   tableName: Config.string("SESSION_TABLE").pipe(Config.withDefault("effect_sessions")),
 *   timeout: Config.duration("SESSION_TIMEOUT").pipe(Config.withDefault("3 seconds"))
 * })
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<Options>
): Layer.Layer<
  SessionStore.SessionStore,
  InvalidConfig | SessionStoreError | ConfigError.ConfigError,
  PgClient.PgClient
> => Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))

/**
 * {@link layerPool} with its options read through `Config`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { PgSessionStore } from "effect-session"
 *
 * const Database = PgSessionStore.layerPoolConfig({
 *   url: Config.redacted("DATABASE_URL"),
 *   maxConnections: Config.integer("DATABASE_POOL").pipe(Config.withDefault(10))
 * })
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerPoolConfig = (
  config: Config.Config.Wrap<PoolOptions>
): Layer.Layer<
  SessionStore.SessionStore | PgClient.PgClient | SqlClient.SqlClient,
  InvalidConfig | SessionStoreError | ConfigError.ConfigError
> => Layer.unwrapEffect(Effect.map(Config.unwrap(config), layerPool))

/**
 * The DDL the layer would run, for teams that manage their schema themselves (`createTable: false`).
 *
 * @since 0.2.0
 * @category utils
 */
export const schemaSql = (options: Pick<Options, "tableName" | "durability"> = {}): Effect.Effect<string, InvalidConfig> =>
  Effect.map(quoteTableName(options.tableName ?? "effect_sessions"), ({ quoted, table }) => {
    const q = statements(quoted, table, options.durability ?? "full")
    return [q.createTable, ...q.indexes.map(([, ddl]) => ddl)].map((ddl) => `${ddl};\n`).join("")
  })
