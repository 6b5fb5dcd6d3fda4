/**
 * The SQLite engine, better-sqlite3 (an optional peer): the few parts of its API the store uses, typed here so that
 * no published declaration refers to its typings; loaded on first use, so that only `SqliteSessionStore` needs it;
 * and a connection opened as the store needs it: WAL, `synchronous` as chosen, no checkpoints (a thread makes them:
 * `sqliteCheckpoint.ts`), and no busy timeout at all (a lock wait inside the engine would block the event loop;
 * `sqliteRun.ts` retries on timers instead).
 */
import { Effect, type Scope } from "effect"
import { InvalidConfig, SessionStoreError } from "../SessionError.js"
import * as SqliteCheckpoint from "./sqliteCheckpoint.js"
import * as SqliteRun from "./sqliteRun.js"

/** A prepared statement. */
export interface Statement {
  run(...params: ReadonlyArray<unknown>): { readonly changes: number }
  get(...params: ReadonlyArray<unknown>): unknown
  all(...params: ReadonlyArray<unknown>): Array<unknown>
}

/** A function run as one transaction; `immediate` takes the write lock at its start (`BEGIN IMMEDIATE`). */
export interface Transaction<A extends ReadonlyArray<unknown>, R> {
  (...args: A): R
  readonly immediate: (...args: A) => R
}

/** A connection. Every call is synchronous. */
export interface Database {
  prepare(source: string): Statement
  exec(source: string): unknown
  pragma(source: string, options: { readonly simple: true }): unknown
  transaction<A extends ReadonlyArray<unknown>, R>(fn: (...args: A) => R): Transaction<A, R>
  close(): unknown
}

/** What the store asks of the connection. */
export interface Settings {
  /** `synchronous`: `normal` syncs at checkpoints only (WAL's recommended setting), `full` at every commit. */
  readonly synchronous: "normal" | "full"
  /** The deadline of the start-up statements (switching to WAL waits for other connections' locks). */
  readonly timeout: number
}

type Constructor = new (filename: string, options: { readonly timeout: number }) => Database

/** How often the checkpointer thread checkpoints the WAL. */
const checkpointMillis = 200

/** The package name, held in a variable so that TypeScript resolves no typings for it. */
const engine: string = "better-sqlite3"

/** The install command the README gives. */
const install = "npm install better-sqlite3@12"

/** better-sqlite3's constructor (Node imports a module once); `InvalidConfig` if it is not installed or fails to load. */
const load = Effect.tryPromise({
  try: async () => ((await import(engine)) as { readonly default: Constructor }).default,
  catch: (error) =>
    new InvalidConfig({
      option: "engine",
      reason: `${engine} could not be loaded (${(error as { code?: unknown }).code ?? "error"}); it is an optional ` +
        `peer of effect-session, needed by SqliteSessionStore only: ${install}`
    })
})

/** The error of a file that cannot serve as the database. */
const unusable = (filename: string, error: unknown) =>
  new InvalidConfig({
    option: "filename",
    reason: `cannot open ${JSON.stringify(filename.slice(0, 200))} as an SQLite database: ${
      (error as { code?: unknown }).code ?? (error as Error).message
    }`
  })

/**
 * Switches the connection to WAL (retried while another connection holds a lock), then sets `synchronous` and
 * turns its checkpoints off.
 */
const configure = (db: Database, filename: string, settings: Settings) =>
  SqliteRun.make(settings.timeout)(() => db.pragma("journal_mode = WAL", { simple: true })).pipe(
    Effect.mapError((error) =>
      SqliteRun.isTimeout(error) ? new SessionStoreError({ operation: "init", cause: error }) : unusable(filename, error)
    ),
    Effect.filterOrFail(
      (mode) => mode === "wal",
      (mode) =>
        new InvalidConfig({
          option: "filename",
          reason: `the database could not be put in WAL mode (journal mode ${String(mode)}): use a file on a local disk`
        })
    ),
    Effect.andThen(Effect.sync(() => {
      db.pragma(`synchronous = ${settings.synchronous.toUpperCase()}`, { simple: true })
      // Checkpoints run on a thread of their own (sqliteCheckpoint.ts); the WAL is cut back to 64 MiB after each.
      db.pragma("wal_autocheckpoint = 0", { simple: true })
      db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`, { simple: true })
    }))
  )

/**
 * Opens the database file (created if missing) in WAL mode, closed with the current scope. A path that cannot be
 * opened, or a file that is not a database, is `InvalidConfig`.
 */
export const open = (
  filename: string,
  settings: Settings
): Effect.Effect<Database, InvalidConfig | SessionStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    if (filename === "" || filename === ":memory:" || filename.startsWith("file:")) {
      return yield* new InvalidConfig({
        option: "filename",
        reason: "must be the path of a database file (for a store in memory, use MemorySessionStore)"
      })
    }
    const Driver = yield* load
    const db = yield* Effect.acquireRelease(
      Effect.try({ try: () => new Driver(filename, { timeout: 0 }), catch: (error) => unusable(filename, error) }),
      (db) => Effect.sync(() => void db.close())
    )
    yield* configure(db, filename, settings)
    yield* SqliteCheckpoint.start(filename, checkpointMillis, () => {
      try {
        db.pragma("wal_autocheckpoint = 1000", { simple: true }) // SQLite's default
      } catch {
        // closed meanwhile: nothing left to checkpoint from here
      }
    })
    return db
  })
