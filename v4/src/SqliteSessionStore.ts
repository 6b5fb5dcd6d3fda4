/**
 * The SQLite `SessionStore`, for apps on a single host: one database file in WAL mode, shared by every process of
 * the app on that host, through better-sqlite3 (an optional peer: `npm install better-sqlite3@12`).
 *
 * One table (default `effect_sessions`), shaped like PostgreSQL's: `id` blob primary key holding `SHA-256(key)`,
 * `family`, `value`, `expires_at` (indexed), `created_at`, `version` for compare-and-set, `rotated`, `ended`, and the
 * owner (`subject`, `audience` indexed, `metadata`, `last_seen_at`). Statements are prepared once; a rotation or a
 * revocation is one `BEGIN IMMEDIATE` transaction. The connection has no busy timeout: a statement that meets
 * another process's lock is tried again on timers, so the event loop never waits inside the engine and every
 * operation fails with `SessionStoreError` when its deadline passes.
 *
 * @since 0.3.0
 */
import { Config, Effect, Layer, type Scope } from "effect"
import { durationOption, oneOf } from "./internal/options.js"
import * as SqliteBackend from "./internal/sqliteBackend.js"
import * as SqliteDriver from "./internal/sqliteDriver.js"
import * as SqliteRun from "./internal/sqliteRun.js"
import * as SqliteSchema from "./internal/sqliteSchema.js"
import { statements } from "./internal/sqliteStatements.js"
import type { InvalidConfig, SessionStoreError } from "./SessionError.js"
import * as SessionStore from "./SessionStore.js"

/**
 * Options of the SQLite store.
 *
 * @since 0.3.0
 * @category options
 */
export interface Options extends SessionStore.Options {
  /** The database file, created if missing (its directory must exist). On a local disk: WAL needs shared memory. */
  readonly filename: string
  /**
   * The table: an identifier (`[A-Za-z_][A-Za-z0-9_]*`, at most 63 characters, not starting with `sqlite_`).
   * Default `"effect_sessions"`.
   */
  readonly tableName?: string | undefined
  /**
   * Create the table and its indexes when the layer is built, and add the columns a table created by an earlier
   * version lacks. Default `true`. With `false` the layer only checks the table.
   */
  readonly createTable?: boolean | undefined
  /**
   * When a commit reaches the disk. Default `"normal"`.
   * - `"normal"`: at checkpoints (SQLite's recommendation for WAL). A crash of the app loses nothing; a power
   *   failure or an OS crash may lose the last commits (never corrupts the file).
   * - `"full"`: at every commit (an fsync, during which the event loop waits): nothing committed is ever lost.
   */
  readonly synchronous?: "normal" | "full" | undefined
}

/**
 * Opens (or creates) the database file and builds the store on it, creating or upgrading the table unless
 * `createTable: false`. The connection closes with the scope.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<SessionStore.Service, InvalidConfig | SessionStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const target = yield* SqliteSchema.quoteTableName(options.tableName ?? "effect_sessions")
    const synchronous = yield* oneOf("synchronous", options.synchronous ?? "normal", ["normal", "full"])
    const timeout = yield* durationOption("timeout", options.timeout ?? SessionStore.defaults.timeout, 1)
    const db = yield* SqliteDriver.open(options.filename, { synchronous, timeout })
    const run = SqliteRun.make(timeout)
    yield* SqliteSchema.init(db, run, target, { createTable: options.createTable !== false })
    return yield* SessionStore.make(SqliteBackend.make(db, statements(target.quoted), run), options)
  })

/**
 * The store as a layer: the library opens the database file and closes it with the layer.
 *
 * @example
 * ```ts
 * import { SqliteSessionStore } from "effect-session"
 *
 * const Sessions = SqliteSessionStore.layer({ filename: "data/sessions.db", timeout: "1 second" })
 * ```
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<SessionStore.SessionStore, InvalidConfig | SessionStoreError> =>
  Layer.effect(SessionStore.SessionStore, make(options))

/**
 * {@link layer} with its options read through `Config`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { SqliteSessionStore } from "effect-session"
 *
 * const Sessions = SqliteSessionStore.layerConfig({
 *   filename: Config.String("SESSION_DB").pipe(Config.withDefault("sessions.db")),
 *   timeout: Config.Duration("SESSION_TIMEOUT").pipe(Config.withDefault("1 second"))
 * })
 * ```
 *
 * @since 0.3.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Wrap<Options>
): Layer.Layer<SessionStore.SessionStore, InvalidConfig | SessionStoreError | Config.ConfigError> =>
  Layer.unwrap(Effect.map(Config.unwrap(config), layer))

/**
 * The DDL the layer would run, for teams that manage their schema themselves (`createTable: false`).
 *
 * @since 0.3.0
 * @category utils
 */
export const schemaSql = (options: Pick<Options, "tableName"> = {}): Effect.Effect<string, InvalidConfig> =>
  Effect.map(SqliteSchema.quoteTableName(options.tableName ?? "effect_sessions"), SqliteSchema.ddl)
