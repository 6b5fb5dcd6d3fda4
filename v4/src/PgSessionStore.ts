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
 * `PgClient` through `effect/sql`.
 *
 * On Effect 4 the pool of `layerPool` is still `pg`'s (the store's own code: prepared statements, deadlines,
 * pipelined reads, batching, several hosts, PgBouncer), and the `PgClient` it provides is this library's, on the
 * same pool's connections (`@effect/sql-pg` 4 has no `PgClient.fromPool`). On a `PgClient` of `@effect/sql-pg` 4
 * itself (`layer`), leave `multiplex` off (its default): with `multiplex: true` the statements of different fibers
 * share a connection in order, so a session write that waits for a row lock (another request's transaction holding
 * the session's row) stalls every read queued behind it on that connection until the lock is released or the
 * deadline passes. `layerPool` never pipelines a write: only its reads share connections.
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import { SqlClient } from "effect/sql"
import { Cause, type Config, Context, type Duration, Effect, Layer, Option, type Scope } from "effect"
import * as Deadline from "./internal/deadline.js"
import { type Configured, durationOption, oneOf, unwrapConfig } from "./internal/options.js"
import * as PgBackend from "./internal/pgBackend.js"
import * as PgPool from "./internal/pgPool.js"
import * as PgSchema from "./internal/pgSchema.js"
import { type Statements, statements } from "./internal/pgStatements.js"
import type { InvalidConfig, SessionStoreError } from "./SessionError.js"
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
  /**
   * How long start-up may wait for the table while another instance upgrades it or a migration holds it (each
   * attempt waits at most a second for a lock, then tries again); past it the layer fails with `SessionStoreError`
   * (`init`). Default 60 seconds.
   */
  readonly startupTimeout?: Duration.Input | undefined
}

/**
 * Options of {@link layerPool}: the connection and pool settings of `PgClient.layer` plus deadlines, and the
 * store's options.
 *
 * @since 0.2.0
 * @category options
 */
export interface PoolOptions extends PgPool.PoolOptions, Options {}

/**
 * Validates a possibly schema-qualified table name and returns its quoted form, its last part and its schema.
 *
 * @since 0.1.0
 * @category utils
 */
export const quoteTableName: (tableName: string) => Effect.Effect<PgSchema.Target, InvalidConfig> =
  PgSchema.quoteTableName

/** Whether `fiber` runs inside a transaction of `sql` (one context lookup: this is on every statement). */
const inTransactionOf = (sql: SqlClient.SqlClient, fiber: { readonly context: Context.Context<never> }) =>
  Context.getOrUndefined(fiber.context, sql.transactionService) !== undefined

/** Whether the calling fiber runs inside a transaction of `sql`. */
const inTransaction = (sql: SqlClient.SqlClient) => Effect.withFiber<boolean>((fiber) => Effect.succeed(inTransactionOf(sql, fiber)))

/**
 * On a pool this library owns: named prepared statements (unless turned off), reads on the pipelined connections
 * and writes on the pool; inside the app's transaction, on the transaction's connection, so the statement joins it.
 */
const onPool = (owned: PgPool.OwnedPool["Service"], q: Statements, viaClient: PgBackend.Run, timeout: number): PgBackend.Run => {
  const names = new Map<string, string | undefined>()
  for (const text of Object.values(q)) {
    if (text !== undefined) names.set(text, owned.preparedStatements ? PgPool.statementName(text) : undefined)
  }
  const { pipeline, pool } = owned
  return (statement, params, timeoutMs = timeout) =>
    Effect.withFiber((fiber) => {
      if (inTransactionOf(owned.client, fiber)) return viaClient(statement, params)
      const name = names.get(statement)
      return pipeline !== undefined && (statement === q.find || statement === q.findMany)
        ? pipeline.query(name, statement, params, timeoutMs)
        : PgPool.query(pool, name, statement, params, timeoutMs)
    })
}

/**
 * On any `PgClient`: through `effect/sql`, with our column names kept as written whatever `transformResultNames`
 * the app uses. Never interrupted (an interrupted query may cancel or drop what shares its connection): past the
 * deadline the caller stops waiting and the query finishes on its own.
 */
const onClient = (sql: PgClient.PgClient, timeout: number): PgBackend.Run => (statement, params) =>
  Deadline.detached(
    sql.unsafe<any>(statement, params as Array<never>).withoutTransform,
    timeout,
    () => new Cause.TimeoutError(`no answer within ${timeout} ms`)
  )

/** Said once at start-up on a `PgClient` with `multiplex: true` (see the module's comment). */
const multiplexWarning = Effect.logWarning(
  "the PgClient has multiplex: true: a session write waiting for a row lock stalls the reads queued behind it on " +
    "its connection until the deadline. Leave multiplex off for the store's client, or use PgSessionStore.layerPool"
).pipe(Effect.annotateLogs("service", "effect-session/PgSessionStore"))

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
    const target = yield* PgSchema.quoteTableName(options.tableName ?? "effect_sessions")
    const durability = yield* oneOf("durability", options.durability ?? "full", ["full", "relaxed", "unlogged"])
    const startupTimeout = yield* durationOption("startupTimeout", options.startupTimeout ?? "60 seconds", 1)
    const sql = yield* PgClient.PgClient
    const { coordinated } = yield* PgSchema.init(sql, target, {
      createTable: options.createTable !== false,
      durability,
      startupTimeout
    })
    // Without its lease (a table managed by its team, created before 0.4), each instance cleans up on its own.
    const q = statements(target.quoted, durability, coordinated ? target.lease : undefined)
    const timeout = yield* durationOption("timeout", options.timeout ?? SessionStore.defaults.timeout, 1)
    const viaClient = onClient(sql, timeout)
    const owned = Option.filter(yield* Effect.serviceOption(PgPool.OwnedPool), (pool) => pool.client === sql)
    if (Option.isNone(owned)) {
      if (sql.config.multiplex === true) yield* multiplexWarning
      return yield* SessionStore.make(PgBackend.make(q, viaClient, inTransaction(sql)), options)
    }
    const run = onPool(owned.value, q, viaClient, timeout)
    // On the owned pool, reads and compare-and-sets of different sessions share statements (internal/pgBatch.ts).
    const lanes = PgBackend.lanes(q, run, yield* Effect.context<never>(), { ...owned.value.batching, timeout })
    return yield* SessionStore.make(PgBackend.make(q, run, inTransaction(sql), lanes), options)
  })

/**
 * The store as a layer on the `PgClient` in context (any `PgClient`, e.g. from `PgClient.layerConfig`).
 *
 * Prefer {@link layerPool} when the library may build the pool: only there is a connection that outlived its
 * deadline discarded (`@effect/sql-pg` returns an interrupted connection to its pool). Leave the client's
 * `multiplex` off: with it, a write waiting for a row lock stalls the reads behind it (start-up warns).
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
  Layer.effect(SessionStore.SessionStore, make(options))

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
  config: Configured<Options>
): Layer.Layer<
  SessionStore.SessionStore,
  InvalidConfig | SessionStoreError | Config.ConfigError,
  PgClient.PgClient
> => Layer.unwrap(Effect.map(unwrapConfig(config), layer))

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
  config: Configured<PoolOptions>
): Layer.Layer<
  SessionStore.SessionStore | PgClient.PgClient | SqlClient.SqlClient,
  InvalidConfig | SessionStoreError | Config.ConfigError
> => Layer.unwrap(Effect.map(unwrapConfig(config), layerPool))

/**
 * The DDL the layer would run, for teams that manage their schema themselves (`createTable: false`).
 *
 * @since 0.2.0
 * @category utils
 */
export const schemaSql = (options: Pick<Options, "tableName" | "durability"> = {}): Effect.Effect<string, InvalidConfig> =>
  Effect.map(PgSchema.quoteTableName(options.tableName ?? "effect_sessions"), (target) =>
    PgSchema.ddl(target, options.durability ?? "full"))
