/**
 * The `SessionStore` service: the Effect parallel of OCaml's `Session.S.Future` signature.
 *
 * Values are strings; keys are {@link SessionKey.SessionKey}s. Every backend (PostgreSQL, memory, ...) is a small
 * {@link Backend} turned into the service by {@link make}, so the semantics below hold everywhere:
 *
 * - time comes from Effect's `Clock` (so `TestClock` drives expiry); a session is expired when `now > expiresAt`,
 *   and a remaining period of exactly zero is still valid;
 * - `set` is an upsert; `clear` is idempotent; `touch` changes the expiry only;
 * - `modify` is an atomic read-modify-write, so concurrent updates are never lost: concurrent `modify`s of one key in
 *   this process are merged into one compare-and-set, and conflicts with other processes are retried;
 * - `rotate` moves a session to a new key atomically; the old key stays readable, read-only, for a stale period;
 * - every operation has a deadline (`timeout`, default 3 seconds), after which it fails with `SessionStoreError`;
 * - keys are hashed with SHA-256 before they reach the backend; a malformed key is `NotFound` without any I/O;
 * - bad input (oversized or malformed value, non-finite expiry) fails with a typed error and writes nothing.
 *
 * @since 0.1.0
 */
import {
  Cause,
  Chunk,
  Context,
  DateTime,
  Duration,
  Effect,
  Exit,
  Option,
  Schedule,
  type Scope,
  Stream
} from "effect"
import * as FailureLog from "./internal/failureLog.js"
import * as OwnerCheck from "./internal/owner.js"
import * as Observability from "./internal/observability.js"
import { durationOption, finiteMillis, positiveInteger } from "./internal/options.js"
import * as WriteQueue from "./internal/writeQueue.js"
import {
  Expired,
  InvalidConfig,
  InvalidExpiry,
  type InvalidSubject,
  InvalidValue,
  NotFound,
  Rotated,
  SessionStoreError
} from "./SessionError.js"
import * as SessionKey from "./SessionKey.js"

/**
 * What `get` returns: the value, the time left before it expires, and whether the key was rotated away.
 *
 * @since 0.1.0
 * @category models
 */
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
  /** Who the session belongs to, if the app said so (`generate`, `rotate` or `setSubject`). */
  readonly subject: string | null
  /** The audience of the session (an app name, say), if any. */
  readonly audience: string | null
}

/**
 * Who a session belongs to: an app-chosen subject (a user id), an optional audience (an app name), and small
 * metadata to show in a list of sessions (a user agent, an IP address). Bounded: subject and audience at most 256
 * bytes, metadata at most 1 KiB as JSON.
 *
 * @since 0.2.0
 * @category models
 */
export interface Owner {
  readonly subject?: string | null | undefined
  readonly audience?: string | null | undefined
  readonly metadata?: Readonly<Record<string, string>> | null | undefined
}

/**
 * A live session as a list shows it: never its key. `id` is `SessionKey.id(key)`, safe to show and to send back.
 *
 * @since 0.2.0
 * @category models
 */
export interface SessionInfo {
  readonly id: string
  readonly subject: string | null
  readonly audience: string | null
  readonly metadata: Readonly<Record<string, string>>
  readonly createdAt: DateTime.Utc
  readonly expiresAt: DateTime.Utc
  /** The last write or renewal: as fresh as the renewal threshold of the middleware. */
  readonly lastSeenAt: DateTime.Utc
}

/**
 * Options for operations that (re)set a session's expiry. `expiry` is measured from now; without it the store's
 * default period applies. A negative number of milliseconds yields a session that is already expired.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExpiryOptions {
  readonly expiry?: Duration.DurationInput | undefined
}

/**
 * Options of `modify`. `from` is what an earlier `get` returned: the first attempt starts from it instead of
 * reading again, saving a round trip; if the session changed meanwhile, `modify` re-reads and retries as usual.
 * A `subject` (with `audience` and `metadata`) sets the owner in the same write, as `setSubject` would; `null`
 * removes it; left out, the owner is unchanged.
 *
 * @since 0.1.0
 * @category models
 */
export interface ModifyOptions extends ExpiryOptions, Owner {
  readonly from?: StoredSession | undefined
}

/**
 * Options of `rotate`. `expiry` is the new session's (default: the store's default period); `staleTimeout` is how
 * long the old key stays readable (default 10 seconds; never longer than it had left; zero ends it at once).
 *
 * @since 0.2.0
 * @category models
 */
export interface RotateOptions extends ModifyOptions {
  readonly staleTimeout?: Duration.DurationInput | undefined
}

/**
 * What `rotate` returns: the new key and the value stored under it.
 *
 * @since 0.2.0
 * @category models
 */
export interface Rotation {
  readonly key: SessionKey.SessionKey
  readonly value: string
}

/**
 * The operations of a session store.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** The period after which new sessions expire when no `expiry` is given (OCaml's `default_period`). */
  readonly defaultPeriod: Effect.Effect<Duration.Duration>
  /** Changes the default period; affects only operations that start afterwards (`set_default_period`). */
  readonly setDefaultPeriod: (period: Duration.DurationInput) => Effect.Effect<void, InvalidExpiry>
  /** Allocates a new session (value defaults to the empty string), optionally owned, and returns its key. */
  readonly generate: (
    options?: ExpiryOptions & Owner & { readonly value?: string | undefined }
  ) => Effect.Effect<SessionKey.SessionKey, InvalidValue | InvalidExpiry | InvalidSubject | SessionStoreError>
  /** The value and remaining period of a live session (also of a rotated one, during its stale period). */
  readonly get: (key: string) => Effect.Effect<StoredSession, NotFound | Expired | SessionStoreError>
  /** Sets the value and expiry, creating the session if it does not exist (upsert). A rotated key refuses. */
  readonly set: (
    key: string,
    value: string,
    options?: ExpiryOptions
  ) => Effect.Effect<void, NotFound | Rotated | InvalidValue | InvalidExpiry | SessionStoreError>
  /** Resets the expiry of a live session, leaving its value alone. */
  readonly touch: (
    key: string,
    options?: ExpiryOptions
  ) => Effect.Effect<void, NotFound | Expired | Rotated | InvalidExpiry | SessionStoreError>
  /**
   * Atomically replaces a live session's value with `f(current)` and returns the new value. Concurrent `modify`
   * and `set` calls are never lost. `f` must be pure: it may run more than once. The expiry is kept unless
   * `options.expiry` is given; the owner too, unless `options.subject` is given.
   */
  readonly modify: (
    key: string,
    f: (current: string) => string,
    options?: ModifyOptions
  ) => Effect.Effect<
    string,
    NotFound | Expired | Rotated | InvalidValue | InvalidExpiry | InvalidSubject | SessionStoreError
  >
  /**
   * Atomically moves a live session to a new key holding `f(current)` (call it on login, against session fixation).
   * The old key keeps exactly the value it had, read-only, for `staleTimeout`, then it is gone: it can never be
   * written, touched, extended or rotated again. Writes queued before the rotation land in both; writes after it
   * fail with `Rotated`. If anything fails, nothing changes.
   */
  readonly rotate: (
    key: string,
    f: (current: string) => string,
    options?: RotateOptions
  ) => Effect.Effect<
    Rotation,
    NotFound | Expired | Rotated | InvalidValue | InvalidExpiry | InvalidSubject | SessionStoreError
  >
  /**
   * Sets (or, with `null`, removes) who a live session belongs to, with its audience and metadata. The new session
   * of a login usually gets it through `rotate` instead, in the same statement.
   */
  readonly setSubject: (
    key: string,
    subject: string | null,
    options?: Omit<Owner, "subject">
  ) => Effect.Effect<void, NotFound | Expired | Rotated | InvalidSubject | SessionStoreError>
  /** The live sessions of a subject (of one audience, if given), most recently seen first; at most 1000. */
  readonly list: (
    subject: string,
    options?: { readonly audience?: string | undefined }
  ) => Effect.Effect<ReadonlyArray<SessionInfo>, InvalidSubject | SessionStoreError>
  /**
   * Ends the session with this id (`SessionKey.id(key)`) at once, everywhere. With `subject`, only if it belongs to
   * that subject (what a "your sessions" page must use). An unknown or malformed id is `NotFound`.
   */
  readonly revoke: (
    id: string,
    options?: { readonly subject?: string | undefined }
  ) => Effect.Effect<void, NotFound | SessionStoreError>
  /**
   * Ends every session of a subject (of one audience, if given), except the one whose id is `except` ("log out
   * everywhere else": the current session's `SessionKey.id(key)`); returns how many live sessions ended. A
   * malformed `except` is `NotFound`, and nothing ends.
   */
  readonly revokeSubject: (
    subject: string,
    options?: { readonly audience?: string | undefined; readonly except?: string | undefined }
  ) => Effect.Effect<number, NotFound | InvalidSubject | SessionStoreError>
  /** Every live session, in pages of 500 (the scs `All()` parallel, for admin tools). */
  readonly all: Stream.Stream<SessionInfo, SessionStoreError>
  /** Removes a session. Idempotent: clearing an unknown or malformed key succeeds. */
  readonly clear: (key: string) => Effect.Effect<void, SessionStoreError>
  /** Removes every expired session (in bounded batches) and returns how many were removed. */
  readonly deleteExpired: Effect.Effect<number, SessionStoreError>
}

/**
 * The session store service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SessionStore } from "effect-session"
 *
 * const program = Effect.gen(function* () {
 *   const store = yield* SessionStore.SessionStore
 *   const key = yield* store.generate({ value: "hello", expiry: "1 hour" })
 *   const { value, expiresIn } = yield* store.get(key)
 * })
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class SessionStore extends Context.Tag("effect-session/SessionStore")<SessionStore, Service>() {}

/**
 * A row as a backend keeps it. `version` changes on every write of the value and is opaque to the store.
 *
 * @since 0.1.0
 * @category backends
 */
export interface Row {
  readonly value: string
  readonly expiresAt: number
  readonly version: string
  readonly rotated: boolean
  readonly subject: string | null
  readonly audience: string | null
}

/**
 * Who a row belongs to, as stored: metadata as JSON text.
 *
 * @since 0.2.0
 * @category backends
 */
export interface StoredOwner {
  readonly subject: string | null
  readonly audience: string | null
  readonly metadata: string | null
}

/**
 * A row as a listing returns it.
 *
 * @since 0.2.0
 * @category backends
 */
export interface InfoRow extends StoredOwner {
  readonly id: Uint8Array
  readonly createdAt: number
  readonly expiresAt: number
  readonly lastSeenAt: number
}

/**
 * The storage primitives a backend provides. Ids are `SHA-256(key)`; times are epoch milliseconds computed by the
 * store from `Clock`. Backends report failures in `E`; {@link make} turns them into `SessionStoreError`. Each
 * primitive must be atomic on its own.
 *
 * @since 0.1.0
 * @category backends
 */
export interface Backend<E = unknown> {
  /** A short name for spans and logs (`"postgres"`, `"memory"`). */
  readonly name?: string | undefined
  readonly find: (id: Uint8Array) => Effect.Effect<Row | undefined, E>
  /** Inserts a new row (used by `generate`; ids are random, so conflicts do not happen). */
  readonly insert: (
    id: Uint8Array,
    value: string,
    expiresAt: number,
    now: number,
    owner: StoredOwner
  ) => Effect.Effect<void, E>
  /** Inserts, or replaces value and expiry (bumping the version) unless the row is rotated. */
  readonly upsert: (
    id: Uint8Array,
    value: string,
    expiresAt: number,
    now: number
  ) => Effect.Effect<"written" | "rotated", E>
  /** Sets the expiry of a row that is live at `now` and not rotated, reporting what it found. */
  readonly touch: (
    id: Uint8Array,
    expiresAt: number,
    now: number
  ) => Effect.Effect<"touched" | "expired" | "missing" | "rotated", E>
  /**
   * Writes `value` (and `expiresAt` and `owner` when given) only if the row still has `version`, is live at `now`
   * and is not rotated; returns the new version, or `undefined` when nothing was written.
   */
  readonly compareAndSet: (
    id: Uint8Array,
    version: string,
    value: string,
    expiresAt: number | undefined,
    now: number,
    owner: StoredOwner | undefined
  ) => Effect.Effect<string | undefined, E>
  /**
   * In one atomic step, if the row still has `version`, is live at `now` and is not rotated: inserts `newId` with
   * `value` and `expiresAt`, and marks the old row rotated with its expiry lowered to `staleExpiresAt` (never
   * raised), its value untouched. Returns whether it rotated.
   */
  readonly rotate: (
    id: Uint8Array,
    version: string,
    newId: Uint8Array,
    value: string,
    expiresAt: number,
    staleExpiresAt: number,
    now: number,
    owner: StoredOwner | undefined
  ) => Effect.Effect<boolean, E>
  /** Sets the owner of a row that is live at `now` and not rotated, reporting what it found. */
  readonly setOwner: (
    id: Uint8Array,
    owner: StoredOwner,
    now: number
  ) => Effect.Effect<"set" | "expired" | "missing" | "rotated", E>
  /** The live, unrotated rows of a subject (and audience), most recently seen first, at most `limit`. */
  readonly list: (
    subject: string,
    audience: string | undefined,
    now: number,
    limit: number
  ) => Effect.Effect<ReadonlyArray<InfoRow>, E>
  /** Live, unrotated rows in id order, after `after`, at most `limit`. */
  readonly page: (after: Uint8Array | undefined, now: number, limit: number) => Effect.Effect<ReadonlyArray<InfoRow>, E>
  /** Deletes the row `id` (only if its subject is `subject`, when given); whether it did. */
  readonly revoke: (id: Uint8Array, subject: string | undefined) => Effect.Effect<boolean, E>
  /** Deletes the rows of a subject (and audience), except `except`; how many of them were live at `now`. */
  readonly revokeSubject: (
    subject: string,
    audience: string | undefined,
    except: Uint8Array | undefined,
    now: number
  ) => Effect.Effect<number, E>
  readonly remove: (id: Uint8Array) => Effect.Effect<void, E>
  /** Deletes at most `limit` rows with `expiresAt < now`, returning how many it deleted. */
  readonly deleteExpiredBatch: (now: number, limit: number) => Effect.Effect<number, E>
  /**
   * Whether the calling fiber runs inside a database transaction. Its `modify` and `rotate` then run in its own
   * fiber, unqueued, so that they join that transaction (and never carry other callers' writes into it).
   */
  readonly inTransaction?: Effect.Effect<boolean> | undefined
  /**
   * Whether every primitive fails within the store's `timeout` on its own (a timer per statement, as
   * `PgSessionStore` does; or synchronous, as the memory backend). The store then adds no deadline of its own,
   * which would cost two fibers per call. Default `false`: the store bounds each call.
   */
  readonly enforcesDeadline?: boolean | undefined
}

/**
 * Options shared by every store layer.
 *
 * @since 0.1.0
 * @category options
 */
export interface Options {
  /** Expiry of sessions created or updated without an explicit one. Default: one week (as ocaml-session). */
  readonly defaultPeriod?: Duration.DurationInput | undefined
  /** Largest value accepted, in UTF-8 bytes. Default: 1 MiB. */
  readonly maxValueBytes?: number | undefined
  /** How often the background cleanup runs `deleteExpired` (jittered ±20%). Zero disables it. Default: 5 minutes. */
  readonly cleanupInterval?: Duration.DurationInput | undefined
  /** Rows deleted per statement by `deleteExpired`, so live traffic never waits behind one huge delete. Default: 1000. */
  readonly cleanupBatchSize?: number | undefined
  /**
   * The deadline of every operation (and of each cleanup batch). When it passes the operation fails with
   * `SessionStoreError` and the connection involved is discarded. Default: 3 seconds.
   */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * The defaults of {@link Options}.
 *
 * @since 0.1.0
 * @category options
 */
export const defaults = {
  defaultPeriod: Duration.weeks(1),
  maxValueBytes: 1024 * 1024,
  cleanupInterval: Duration.minutes(5),
  cleanupBatchSize: 1000,
  timeout: Duration.seconds(3),
  staleTimeout: Duration.seconds(10)
} as const

const invalidExpiry = (input: Duration.DurationInput) => new InvalidExpiry({ input: String(input) })

const expiryMillis = (input: Duration.DurationInput): Effect.Effect<number, InvalidExpiry> => {
  const ms = finiteMillis(input)
  return ms === undefined ? Effect.fail(invalidExpiry(input)) : Effect.succeed(ms)
}

const validateConfig = (options: Options) =>
  Effect.all({
    period: durationOption("defaultPeriod", options.defaultPeriod ?? defaults.defaultPeriod, 0),
    cleanupInterval: durationOption("cleanupInterval", options.cleanupInterval ?? defaults.cleanupInterval, 0),
    maxValueBytes: positiveInteger("maxValueBytes", options.maxValueBytes ?? defaults.maxValueBytes),
    batchSize: positiveInteger("cleanupBatchSize", options.cleanupBatchSize ?? defaults.cleanupBatchSize),
    timeout: durationOption("timeout", options.timeout ?? defaults.timeout, 1)
  })

const currentTime = Effect.clockWith((clock) => clock.currentTimeMillis)

/** Sessions per page of `all`. */
const pageSize = 500

/**
 * Builds the service from a backend: validation, hashing, expiry arithmetic, deadlines, the write queues of
 * `modify` and `rotate`, and the cleanup fiber, which is forked into the current scope and stops when it closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E>(
  backend: Backend<E>,
  options: Options = {}
): Effect.Effect<Service, InvalidConfig, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* validateConfig(options)
    let defaultPeriod = config.period
    const scope = yield* Effect.scope
    const logFailure = FailureLog.make("effect-session/SessionStore")

    /**
     * Bounds an operation by the deadline; when it passes, the operation is interrupted (its connection discarded).
     * The operation is made interruptible: callers often run in uninterruptible regions (an HTTP server runs its
     * middleware and pre-response handlers so), where a timeout would otherwise wait for the very call it bounds.
     * The caller itself stays as protected as it was.
     */
    const timedOut = (operation: string) =>
      new SessionStoreError({ operation, cause: new Cause.TimeoutException(`no answer within ${config.timeout} ms`) })
    /** `effect` within the deadline, unless the backend bounds its own calls. */
    const bounded = <A, E2>(operation: string, effect: Effect.Effect<A, E2>): Effect.Effect<A, E2 | SessionStoreError> =>
      backend.enforcesDeadline === true
        ? effect
        : Effect.timeoutFail(Effect.interruptible(effect), { duration: config.timeout, onTimeout: () => timedOut(operation) })
    /** A backend call: timed, its failures become `SessionStoreError`, and it is bounded by the deadline. */
    const call = <A>(operation: Observability.StoreOperation, effect: Effect.Effect<A, E>) =>
      bounded(operation, Observability.timed(operation, effect, (cause) => new SessionStoreError({ operation, cause })))
    const notFound = Effect.fail(new NotFound())
    const expired = Effect.fail(new Expired())
    const rotated = Effect.fail(new Rotated())

    const expiresAt = (now: number, expiry: Duration.DurationInput | undefined) =>
      expiry === undefined ? Effect.succeed(now + defaultPeriod) : Effect.map(expiryMillis(expiry), (ms) => now + ms)

    const invalidValue = (value: string): InvalidValue | undefined => {
      const bytes = Buffer.byteLength(value, "utf8")
      if (bytes > config.maxValueBytes) {
        return new InvalidValue({ reason: "TooLarge", bytes, maxBytes: config.maxValueBytes })
      }
      if (!OwnerCheck.wellFormed(value)) {
        return new InvalidValue({ reason: "NotWellFormed", bytes, maxBytes: config.maxValueBytes })
      }
      return undefined
    }
    const checkValue = (value: string): Effect.Effect<void, InvalidValue> => {
      const invalid = invalidValue(value)
      return invalid === undefined ? Effect.void : Effect.fail(invalid)
    }

    const infoOf = (row: InfoRow): SessionInfo => ({
      id: Buffer.from(row.id.buffer, row.id.byteOffset, row.id.byteLength).toString("base64url"),
      subject: row.subject,
      audience: row.audience,
      metadata: row.metadata === null ? {} : JSON.parse(row.metadata),
      createdAt: DateTime.unsafeMake(row.createdAt),
      expiresAt: DateTime.unsafeMake(row.expiresAt),
      lastSeenAt: DateTime.unsafeMake(row.lastSeenAt)
    })

    /** Runs `f` with the hashed key, or fails with `onMalformed` without any I/O. */
    const withId = <A, E2, R, E3>(
      key: string,
      onMalformed: Effect.Effect<A, E3>,
      f: (id: Uint8Array) => Effect.Effect<A, E2, R>
    ): Effect.Effect<A, E2 | E3, R> => SessionKey.isSessionKey(key) ? f(SessionKey.hash(key)) : onMalformed

    /** A revision names its row too, so a `from` read from another session is never mistaken for this one's. */
    const rowTag = (id: Uint8Array) => Buffer.from(id.buffer, id.byteOffset, 6).toString("base64url")
    const revisionOf = (id: Uint8Array, version: string) => `${version}.${rowTag(id)}`
    const knownFrom = (id: Uint8Array, from: StoredSession | undefined): WriteQueue.Current | undefined => {
      if (from === undefined || from.rotated) return undefined
      const [version, tag] = from.revision.split(".")
      return version !== undefined && tag === rowTag(id) ? { value: from.value, version } : undefined
    }

    /** What a backend reported of a row it could not change, as the error; nothing when it changed it. */
    const unchanged = (
      outcome: "missing" | "expired" | "rotated" | "touched" | "set"
    ): Effect.Effect<void, NotFound | Expired | Rotated> =>
      outcome === "missing" ? notFound : outcome === "expired" ? expired : outcome === "rotated" ? rotated : Effect.void

    const live = (row: Row | undefined, now: number): Effect.Effect<Row, NotFound | Expired> =>
      row === undefined ? notFound : now > row.expiresAt ? expired : Effect.succeed(row)

    /** One statement of a queued write (timed as a whole by its caller): failures mapped, bounded by the deadline. */
    const statement = <A>(operation: string, effect: Effect.Effect<A, E>) =>
      bounded(operation, Effect.mapError(effect, (cause) => new SessionStoreError({ operation, cause })))

    const writes = WriteQueue.make({
      now: currentTime,
      read: (id) =>
        Effect.flatMap(
          Effect.zip(statement("modify", backend.find(id)), currentTime),
          ([row, now]) => Effect.flatMap(live(row, now), (row) => row.rotated ? rotated : Effect.succeed(row))
        ),
      write: (id, version, value, until, now, owner) =>
        statement("modify", backend.compareAndSet(id, version, value, until, now, owner)),
      rotate: (id, version, newId, value, until, staleUntil, now, owner) =>
        statement("rotate", backend.rotate(id, version, newId, value, until, staleUntil, now, owner)),
      checkValue: invalidValue,
      onDefect: (cause) => logFailure("write queue (defect)", Cause.squash(cause))
    }, scope)

    const backendName = backend.name ?? "custom"
    const measured = <A, E2>(
      operation: Observability.StoreOperation,
      effect: Effect.Effect<A, E2>,
      attributes?: () => Record<string, unknown>
    ) => Observability.storeSpan(backendName, operation, effect, attributes)

    /** Queues a write and waits for it, within the deadline; a caller that gives up withdraws its job. */
    const queued = <A>(
      operation: "modify" | "rotate",
      id: Uint8Array,
      from: StoredSession | undefined,
      job: (result: WriteQueue.Outcome<A>) => WriteQueue.Job
    ) =>
      Effect.suspend(() => {
        const result = new WriteQueue.Outcome<A>()
        const queuedJob = job(result)
        const attempts = () => ({ "session.attempts": queuedJob.attempts })
        const known = knownFrom(id, from)
        const submit = backend.inTransaction === undefined
          ? writes.submit(id, queuedJob, known)
          : Effect.flatMap(
            backend.inTransaction,
            (inTransaction) =>
              inTransaction ? writes.runAlone(id, queuedJob, known) : writes.submit(id, queuedJob, known)
          )
        // The caller's deadline is a timer that fails its result (and withdraws the job), not a racing fiber.
        const timer = setTimeout(() => {
          queuedJob.abandoned = true
          result.settle(Exit.fail(timedOut(operation)))
        }, config.timeout)
        const waited = submit.pipe(
          Effect.zipRight(result.await),
          Effect.ensuring(Effect.sync(() => clearTimeout(timer))),
          Effect.onInterrupt(() => Effect.sync(() => (queuedJob.abandoned = true)))
        )
        return measured(operation, Observability.timed(operation, waited, (error) => error), attempts)
      })

    const deleteExpired = Effect.gen(function*() {
      const now = yield* currentTime
      let total = 0
      while (true) {
        const deleted = yield* call("deleteExpired", backend.deleteExpiredBatch(now, config.batchSize))
        total += deleted
        if (deleted < config.batchSize) return total
        yield* Effect.yieldNow()
      }
    })

    const service: Service = {
      defaultPeriod: Effect.sync(() => Duration.millis(defaultPeriod)),
      setDefaultPeriod: (period) =>
        expiryMillis(period).pipe(
          Effect.filterOrFail((ms) => ms >= 0, () => invalidExpiry(period)),
          Effect.flatMap((ms) => Effect.sync(() => void (defaultPeriod = ms)))
        ),
      generate: (options = {}) =>
        measured("generate", Effect.gen(function*() {
          const value = options.value ?? ""
          yield* checkValue(value)
          const owner = (yield* OwnerCheck.stored(options)) ?? OwnerCheck.none
          const now = yield* currentTime
          const until = yield* expiresAt(now, options.expiry)
          const key = SessionKey.generate()
          yield* call("generate", backend.insert(SessionKey.hash(key), value, until, now, owner))
          return key
        })),
      // The hottest path of an HTTP app: one backend call and one step after it, no generator.
      get: (key) =>
        measured("get", withId(key, notFound, (id) =>
          Effect.flatMap(
            call("get", backend.find(id)),
            (row) =>
              Effect.clockWith((clock): Effect.Effect<StoredSession, NotFound | Expired> => {
                const now = clock.unsafeCurrentTimeMillis()
                if (row === undefined) return notFound
                if (now > row.expiresAt) return expired
                return Effect.succeed<StoredSession>({
                  value: row.value,
                  expiresIn: Duration.millis(row.expiresAt - now),
                  revision: revisionOf(id, row.version),
                  rotated: row.rotated,
                  subject: row.subject,
                  audience: row.audience
                })
              })
          ))),
      set: (key, value, options = {}) =>
        measured("set", withId(key, notFound, (id) =>
          Effect.gen(function*() {
            yield* checkValue(value)
            const now = yield* currentTime
            const until = yield* expiresAt(now, options.expiry)
            const outcome = yield* call("set", backend.upsert(id, value, until, now))
            if (outcome === "rotated") return yield* rotated
          }))),
      touch: (key, options = {}) =>
        measured("touch", withId(key, notFound, (id) =>
          Effect.gen(function*() {
            const now = yield* currentTime
            const until = yield* expiresAt(now, options.expiry)
            yield* unchanged(yield* call("touch", backend.touch(id, until, now)))
          }))),
      modify: (key, f, options = {}) =>
        withId(key, notFound, (id) =>
          Effect.gen(function*() {
            const expiry = options.expiry === undefined ? undefined : yield* expiryMillis(options.expiry)
            const owner = yield* OwnerCheck.stored(options)
            return yield* queued<string>("modify", id, options.from, (result) => ({
              _tag: "Modify",
              f,
              expiry,
              owner,
              result,
              abandoned: false,
              attempts: 0
            }))
          })),
      rotate: (key, f, options = {}) =>
        withId(key, notFound, (id) =>
          Effect.gen(function*() {
            const expiry = options.expiry === undefined ? defaultPeriod : yield* expiryMillis(options.expiry)
            const stale = options.staleTimeout === undefined
              ? Duration.toMillis(defaults.staleTimeout)
              : yield* expiryMillis(options.staleTimeout)
            const owner = yield* OwnerCheck.stored(options)
            return yield* queued<Rotation>("rotate", id, options.from, (result) => ({
              _tag: "Rotate",
              f,
              expiry,
              owner,
              staleTimeout: Math.max(0, stale),
              result,
              abandoned: false,
              attempts: 0
            }))
          })),
      setSubject: (key, subject, options = {}) =>
        measured("setSubject", withId(key, notFound, (id) =>
          Effect.gen(function*() {
            const owner = (yield* OwnerCheck.stored({ ...options, subject })) ?? OwnerCheck.none
            const now = yield* currentTime
            yield* unchanged(yield* call("setSubject", backend.setOwner(id, owner, now)))
          }))),
      list: (subject, options = {}) =>
        measured("list", Effect.gen(function*() {
          const checked = yield* OwnerCheck.name("subject", subject)
          const audience = yield* OwnerCheck.name("audience", options.audience)
          const now = yield* currentTime
          const rows = yield* call("list", backend.list(checked!, audience ?? undefined, now, 1000))
          return rows.map(infoOf)
        })),
      revoke: (id, options = {}) => {
        const digest = SessionKey.digestOfId(id)
        if (digest === undefined) return measured("revoke", notFound)
        return measured(
          "revoke",
          Effect.flatMap(call("revoke", backend.revoke(digest, options.subject)), (revoked) => revoked ? Effect.void : notFound)
        )
      },
      revokeSubject: (subject, options = {}) =>
        measured("revokeSubject", Effect.gen(function*() {
          const checked = yield* OwnerCheck.name("subject", subject)
          const audience = yield* OwnerCheck.name("audience", options.audience)
          const except = options.except === undefined ? undefined : SessionKey.digestOfId(options.except)
          if (options.except !== undefined && except === undefined) return yield* notFound
          const now = yield* currentTime
          return yield* call("revokeSubject", backend.revokeSubject(checked!, audience ?? undefined, except, now))
        })),
      // A span per page: a stream has no single extent a span could cover.
      all: Stream.paginateChunkEffect(undefined as Uint8Array | undefined, (after) =>
        measured(
          "all",
          Effect.flatMap(currentTime, (now) =>
            Effect.map(call("all", backend.page(after, now, pageSize)), (rows) =>
              [
                Chunk.fromIterable(rows.map(infoOf)),
                rows.length < pageSize ? Option.none() : Option.some(rows[rows.length - 1]!.id)
              ] as const
            ))
        )),
      clear: (key) => measured("clear", withId(key, Effect.void, (id) => call("clear", backend.remove(id)))),
      deleteExpired: measured("deleteExpired", deleteExpired)
    }

    if (config.cleanupInterval > 0) {
      const sweep = service.deleteExpired.pipe(
        Effect.tap((removed) =>
          Effect.zipRight(
            Effect.zipRight(
              Observability.count(Observability.cleanupRuns),
              Observability.count(Observability.cleanupRemoved, removed)
            ),
            removed > 0 ? Effect.logDebug(`removed ${removed} expired sessions`) : Effect.void
          )
        ),
        Effect.catchAll((error) => logFailure("cleanup", error, "Warning"))
      )
      // Every interval ±20%, so that many instances started together do not prune at once.
      yield* sweep.pipe(
        Effect.schedule(Schedule.spaced(Duration.millis(config.cleanupInterval)).pipe(Schedule.jittered)),
        Effect.annotateLogs("service", "effect-session/SessionStore"),
        Effect.forkScoped
      )
    }
    return service
  })
