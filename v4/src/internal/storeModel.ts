/**
 * The store's models and its backend contract: the types `SessionStore.ts` publishes and the internals share.
 * Types only (and the defaults), so every module can import them without an import cycle.
 */
import { type DateTime, Duration, type Effect } from "effect"
import type * as SessionKey from "../SessionKey.js"

/** What `get` returns. */
export interface StoredSession {
  readonly value: string
  readonly expiresIn: Duration.Duration
  /** Opaque; changes on every write of the value. Pass the whole record to `modify` as `from`. */
  readonly revision: string
  /**
   * The key was rotated away by `rotate`: the value is what it held before the rotation, every write through this
   * key fails with `Rotated`, and it expires at the end of its stale period.
   */
  readonly rotated: boolean
  /** Who the session belongs to, if the app said so (`generate`, `rotate`, `setSubject` or `modify`). */
  readonly subject: string | null
  /** The audience of the session (an app name, say), if any. */
  readonly audience: string | null
  /**
   * The session's public id: the same from its creation to its end, whatever rotations it goes through. Safe to
   * show and to send back; `list` shows it and `revoke` takes it. It never opens a session.
   */
  readonly id: string
}

/**
 * Who a session belongs to: an app-chosen subject (a user id), an optional audience (an app name), and small
 * metadata to show in a list of sessions (a user agent, an IP address). Bounded: subject and audience at most 256
 * bytes, metadata at most 1 KiB as JSON.
 */
export interface Owner {
  readonly subject?: string | null | undefined
  readonly audience?: string | null | undefined
  readonly metadata?: Readonly<Record<string, string>> | null | undefined
}

/** A live session as a list shows it: never its key. `id` is the session's public id. */
export interface SessionInfo {
  readonly id: string
  readonly subject: string | null
  readonly audience: string | null
  readonly metadata: Readonly<Record<string, string>>
  /**
   * When the session's current key began: its last login (`rotate`, the middleware's `regenerate`), or its
   * creation if it never rotated. The id stays the same across rotations; this time does not.
   */
  readonly createdAt: DateTime.Utc
  readonly expiresAt: DateTime.Utc
  /** The last write or renewal: as fresh as the renewal threshold of the middleware. */
  readonly lastSeenAt: DateTime.Utc
}

/**
 * When a write leaves the session expiring. `expiry` is measured from now; `expiresAt` is a point in time (what a
 * caller that computed an absolute deadline passes, so a write that waits does not push it later). Without
 * either, the store's default period applies. A past time, or a negative expiry, yields an expired session.
 */
export interface ExpiryOptions {
  readonly expiry?: Duration.Input | undefined
  readonly expiresAt?: DateTime.DateTime | undefined
}

/**
 * Options of `modify`. `from` is what an earlier `get` returned: the first attempt starts from it instead of
 * reading again; if the session changed meanwhile, `modify` re-reads and retries as usual. A `subject` (with
 * `audience` and `metadata`) sets the owner in the same write; `null` removes it; left out, it is unchanged.
 */
export interface ModifyOptions extends ExpiryOptions, Owner {
  readonly from?: StoredSession | undefined
}

/**
 * Options of `rotate`. The expiry is the new key's (default: the store's default period); `staleTimeout` is how
 * long the old key stays readable (default 10 seconds; never longer than it had left; zero ends it at once).
 */
export interface RotateOptions extends ModifyOptions {
  readonly staleTimeout?: Duration.Input | undefined
}

/** What `rotate` returns: the new key and the value stored under it. */
export interface Rotation {
  readonly key: SessionKey.SessionKey
  readonly value: string
}

/** Options shared by every store layer. */
export interface Options {
  /** Expiry of sessions created or updated without an explicit one. Default: one week (as ocaml-session). */
  readonly defaultPeriod?: Duration.Input | undefined
  /** Largest value accepted, in UTF-8 bytes. Default: 1 MiB. */
  readonly maxValueBytes?: number | undefined
  /**
   * How often the background cleanup runs `deleteExpired` (jittered ±20%). Instances sharing a PostgreSQL table or a
   * Redis run it once per interval between them. Zero disables it. Default: 5 minutes.
   */
  readonly cleanupInterval?: Duration.Input | undefined
  /** Rows deleted per statement by `deleteExpired`, so live traffic never waits behind one huge delete. Default: 1000. */
  readonly cleanupBatchSize?: number | undefined
  /**
   * The deadline of every operation (and of each cleanup batch). When it passes the operation fails with
   * `SessionStoreError` and the connection involved is discarded. Default: 3 seconds.
   */
  readonly timeout?: Duration.Input | undefined
}

/** The defaults of {@link Options}, and the stale period of `rotate`. */
export const defaults = {
  defaultPeriod: Duration.weeks(1),
  maxValueBytes: 1024 * 1024,
  cleanupInterval: Duration.minutes(5),
  cleanupBatchSize: 1000,
  timeout: Duration.seconds(3),
  staleTimeout: Duration.seconds(10)
} as const

// ---------------------------------------------------------------------------------------------------------------
// The backend contract
// ---------------------------------------------------------------------------------------------------------------

/** Who a row belongs to, as stored: metadata as JSON text. */
export interface StoredOwner {
  readonly subject: string | null
  readonly audience: string | null
  readonly metadata: string | null
}

/**
 * A row as a backend keeps it. `version` changes on every write of the value and is opaque to the store. `family`
 * is the session's identity: the id of the key it was created with, carried by every key a rotation makes.
 */
export interface Row {
  readonly value: string
  readonly expiresAt: number
  readonly version: string
  readonly rotated: boolean
  readonly subject: string | null
  readonly audience: string | null
  readonly family: Uint8Array
}

/** A session as a listing returns it: `id` is its family. */
export interface InfoRow extends StoredOwner {
  readonly id: Uint8Array
  readonly createdAt: number
  readonly expiresAt: number
  readonly lastSeenAt: number
}

/**
 * Why a conditional write changed nothing: no live row (never created, ended, or removed), its expiry has passed,
 * or it was rotated away.
 */
export type Refusal = "missing" | "expired" | "rotated"

/**
 * The storage primitives a backend provides, each taking one options object. Ids are `SHA-256(key)`; times are
 * epoch milliseconds computed by the store from `Clock`. Each primitive is atomic on its own. A row that ended
 * (`clear`, `revoke`, `revokeSubject`) stays as a tombstone until its expiry passes: it reads as missing and
 * refuses every write (`upsert` included), so nothing brings an ended session back. Backends report failures in
 * `E`; the store turns them into `SessionStoreError`.
 */
export interface Backend<E = unknown> {
  /** A short name for spans and logs (`"postgres"`, `"memory"`). */
  readonly name?: string | undefined
  /** The row `id`, unless there is none or it ended. */
  readonly find: (options: { readonly id: Uint8Array }) => Effect.Effect<Row | undefined, E>
  /** Inserts a new session, its own family (ids are random, so conflicts do not happen). */
  readonly insert: (options: {
    readonly id: Uint8Array
    readonly value: string
    readonly expiresAt: number
    readonly now: number
    readonly owner: StoredOwner
  }) => Effect.Effect<void, E>
  /**
   * Replaces value and expiry of the row if it is live at `now` and not rotated (the version changes only if the
   * value does); inserts it, its own family, if there is no row at all; otherwise says why not.
   */
  readonly upsert: (options: {
    readonly id: Uint8Array
    readonly value: string
    readonly expiresAt: number
    readonly now: number
  }) => Effect.Effect<"written" | Refusal, E>
  /** Sets the expiry of a row that is live at `now` and not rotated, or says why not. */
  readonly touch: (options: {
    readonly id: Uint8Array
    readonly expiresAt: number
    readonly now: number
  }) => Effect.Effect<"touched" | Refusal, E>
  /**
   * Writes `value` (and `expiresAt` and `owner` when given) only if the row still has `version`, is live at `now`
   * and is not rotated; returns the new version, or `undefined` when nothing was written.
   */
  readonly compareAndSet: (options: {
    readonly id: Uint8Array
    readonly version: string
    readonly value: string
    readonly expiresAt: number | undefined
    readonly now: number
    readonly owner: StoredOwner | undefined
  }) => Effect.Effect<string | undefined, E>
  /**
   * In one atomic step, if the row still has `version`, is live at `now` and is not rotated: inserts `newId` (same
   * family) with `value`, `expiresAt` and `owner` (or the old row's owner), created at `now`; and marks the old row
   * rotated with its expiry lowered to `staleExpiresAt` (never raised), its value untouched. Whether it rotated.
   */
  readonly rotate: (options: {
    readonly id: Uint8Array
    readonly version: string
    readonly newId: Uint8Array
    readonly value: string
    readonly expiresAt: number
    readonly staleExpiresAt: number
    readonly now: number
    readonly owner: StoredOwner | undefined
  }) => Effect.Effect<boolean, E>
  /** Sets the owner of a row that is live at `now` and not rotated, or says why not. */
  readonly setOwner: (options: {
    readonly id: Uint8Array
    readonly owner: StoredOwner
    readonly now: number
  }) => Effect.Effect<"set" | Refusal, E>
  /** The live sessions (unrotated rows) of a subject and audience, most recently seen first, at most `limit`. */
  readonly list: (options: {
    readonly subject: string
    readonly audience: string | undefined
    readonly now: number
    readonly limit: number
  }) => Effect.Effect<ReadonlyArray<InfoRow>, E>
  /** Live sessions in family order, after the family `after`, at most `limit`. */
  readonly page: (options: {
    readonly after: Uint8Array | undefined
    readonly now: number
    readonly limit: number
  }) => Effect.Effect<ReadonlyArray<InfoRow>, E>
  /**
   * Ends every key of the session `family` (only if one of them belongs to `subject`, when given), including a
   * key made by a rotation that runs concurrently: once it returns, no key of the family reads or writes. Whether
   * it ended anything.
   */
  readonly revoke: (options: {
    readonly family: Uint8Array
    readonly subject: string | undefined
    readonly now: number
  }) => Effect.Effect<boolean, E>
  /**
   * Ends every key of every session of a subject (and audience), except the session `except`, as `revoke` does;
   * returns how many sessions were live.
   */
  readonly revokeSubject: (options: {
    readonly subject: string
    readonly audience: string | undefined
    readonly except: Uint8Array | undefined
    readonly now: number
  }) => Effect.Effect<number, E>
  /** Ends the session of the key `id` (every key of it, as `revoke`); a rotated key ends alone. */
  readonly clear: (options: { readonly id: Uint8Array; readonly now: number }) => Effect.Effect<void, E>
  /** Deletes at most `limit` rows (tombstones included) with `expiresAt < now`, returning how many it deleted. */
  readonly deleteExpired: (options: { readonly now: number; readonly limit: number }) => Effect.Effect<number, E>
  /**
   * Claims the background cleanup for the instances sharing this storage: true unless another one claimed it less
   * than `spacing` ms before `now` (by the claimer's clock). Backends of one process have none: every run is claimed.
   */
  readonly claimCleanup?: ((options: { readonly now: number; readonly spacing: number }) => Effect.Effect<boolean, E>) | undefined
  /**
   * The new key of a rotation of the session `family`. A sharded backend chooses a key that lands on the family's
   * shard. Default: a fresh random key.
   */
  readonly rotationKey?: ((family: Uint8Array) => SessionKey.SessionKey) | undefined
  /**
   * Whether the calling fiber runs inside a database transaction. Its `modify` and `rotate` then run in its own
   * fiber, unqueued, so that they join that transaction (and never carry other callers' writes into it).
   */
  readonly inTransaction?: Effect.Effect<boolean> | undefined
  /**
   * Whether every primitive fails within the store's `timeout` on its own (a timer per statement, as
   * `PgSessionStore` does; or synchronous, as the memory backend). The store then adds no deadline of its own.
   * Default `false`: the store bounds each call.
   */
  readonly enforcesDeadline?: boolean | undefined
}
