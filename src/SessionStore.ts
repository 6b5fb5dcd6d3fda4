/**
 * The `SessionStore` service: the Effect parallel of OCaml's `Session.S.Future` signature.
 *
 * Values are strings; keys are {@link SessionKey.SessionKey}s. Every backend (PostgreSQL, memory, ...) is a small
 * {@link Backend} turned into the service by {@link make}, so the semantics below hold everywhere:
 *
 * - time comes from Effect's `Clock` (so `TestClock` drives expiry); a session is expired when `now > expiresAt`,
 *   and a remaining period of exactly zero is still valid;
 * - `set` is an upsert; `clear` is idempotent; `touch` changes the expiry only;
 * - `modify` is an atomic read-modify-write (compare-and-set on a row version, retried), so concurrent updates are
 *   never lost;
 * - keys are hashed with SHA-256 before they reach the backend; a malformed key is `NotFound` without any I/O;
 * - bad input (oversized or malformed value, non-finite expiry) fails with a typed error and writes nothing.
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Random, Ref, type Scope } from "effect"
import {
  Expired,
  InvalidConfig,
  InvalidExpiry,
  InvalidValue,
  NotFound,
  SessionStoreError
} from "./SessionError.js"
import { durationOption, finiteMillis, positiveInteger } from "./internal/options.js"
import * as SessionKey from "./SessionKey.js"

/**
 * What `get` returns: the value and the time left before it expires.
 *
 * @since 0.1.0
 */
export interface StoredSession {
  readonly value: string
  readonly expiresIn: Duration.Duration
  /** Opaque; changes on every write of the value. Pass the whole record to `modify` as `from`. */
  readonly revision: string
}

/**
 * Options for operations that (re)set a session's expiry. `expiry` is measured from now; without it the store's
 * default period applies. A negative number of milliseconds yields a session that is already expired.
 *
 * @since 0.1.0
 */
export interface ExpiryOptions {
  readonly expiry?: Duration.DurationInput | undefined
}

/**
 * Options of `modify`. `from` is what an earlier `get` returned: the first attempt starts from it instead of
 * reading again, saving a round trip; if the session changed meanwhile, `modify` re-reads and retries as usual.
 *
 * @since 0.1.0
 */
export interface ModifyOptions extends ExpiryOptions {
  readonly from?: StoredSession | undefined
}

/**
 * The operations of a session store.
 *
 * @since 0.1.0
 */
export interface Service {
  /** The period after which new sessions expire when no `expiry` is given (OCaml's `default_period`). */
  readonly defaultPeriod: Effect.Effect<Duration.Duration>
  /** Changes the default period; affects only operations that start afterwards (`set_default_period`). */
  readonly setDefaultPeriod: (period: Duration.DurationInput) => Effect.Effect<void, InvalidExpiry>
  /** Allocates a new session (value defaults to the empty string) and returns its key. */
  readonly generate: (
    options?: ExpiryOptions & { readonly value?: string | undefined }
  ) => Effect.Effect<SessionKey.SessionKey, InvalidValue | InvalidExpiry | SessionStoreError>
  /** The value and remaining period of a live session. */
  readonly get: (key: string) => Effect.Effect<StoredSession, NotFound | Expired | SessionStoreError>
  /** Sets the value and expiry, creating the session if it does not exist (upsert). */
  readonly set: (
    key: string,
    value: string,
    options?: ExpiryOptions
  ) => Effect.Effect<void, NotFound | InvalidValue | InvalidExpiry | SessionStoreError>
  /** Resets the expiry of a live session, leaving its value alone. */
  readonly touch: (
    key: string,
    options?: ExpiryOptions
  ) => Effect.Effect<void, NotFound | Expired | InvalidExpiry | SessionStoreError>
  /**
   * Atomically replaces a live session's value with `f(current)` and returns the new value. Concurrent `modify`
   * and `set` calls are never lost: the write is a compare-and-set on the row's version, retried on conflict, so
   * `f` must be pure (it may run more than once). The expiry is kept unless `options.expiry` is given.
   */
  readonly modify: (
    key: string,
    f: (current: string) => string,
    options?: ModifyOptions
  ) => Effect.Effect<string, NotFound | Expired | InvalidValue | InvalidExpiry | SessionStoreError>
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
 */
export class SessionStore extends Context.Tag("effect-session/SessionStore")<SessionStore, Service>() {}

/**
 * A row as a backend keeps it. `version` changes on every write and is opaque to the store.
 *
 * @since 0.1.0
 */
export interface Row {
  readonly value: string
  readonly expiresAt: number
  readonly version: string
}

/**
 * The storage primitives a backend provides. Ids are `SHA-256(key)`; times are epoch milliseconds computed by the
 * store from `Clock`. Backends report failures in `E`; {@link make} turns them into `SessionStoreError`.
 *
 * @since 0.1.0
 */
export interface Backend<E = unknown> {
  readonly find: (id: Uint8Array) => Effect.Effect<Row | undefined, E>
  /** Inserts a new row (used by `generate`; ids are random, so conflicts do not happen). */
  readonly insert: (id: Uint8Array, value: string, expiresAt: number, now: number) => Effect.Effect<void, E>
  /** Inserts or replaces value and expiry, bumping the version. */
  readonly upsert: (id: Uint8Array, value: string, expiresAt: number, now: number) => Effect.Effect<void, E>
  /** Sets the expiry of a row that is live at `now`, reporting what it found. */
  readonly touch: (
    id: Uint8Array,
    expiresAt: number,
    now: number
  ) => Effect.Effect<"touched" | "expired" | "missing", E>
  /** Writes `value` (and `expiresAt` when given) only if the row still has `version` and is live at `now`. */
  readonly compareAndSet: (
    id: Uint8Array,
    version: string,
    value: string,
    expiresAt: number | undefined,
    now: number
  ) => Effect.Effect<boolean, E>
  readonly remove: (id: Uint8Array) => Effect.Effect<void, E>
  /** Deletes at most `limit` rows with `expiresAt < now`, returning how many it deleted. */
  readonly deleteExpiredBatch: (now: number, limit: number) => Effect.Effect<number, E>
}

/**
 * Options shared by every store layer.
 *
 * @since 0.1.0
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
}

/** @since 0.1.0 */
export const defaults = {
  defaultPeriod: Duration.weeks(1),
  maxValueBytes: 1024 * 1024,
  cleanupInterval: Duration.minutes(5),
  cleanupBatchSize: 1000
} as const

/** Gives up on a `modify` after this many lost compare-and-set races (a sign of a hot loop, not of load). */
const maxModifyAttempts = 1000

const expiryMillis = (input: Duration.DurationInput): Effect.Effect<number, InvalidExpiry> => {
  const ms = finiteMillis(input)
  return ms === undefined ? Effect.fail(new InvalidExpiry({ input: String(input) })) : Effect.succeed(ms)
}

const validateConfig = (options: Options) =>
  Effect.all({
    period: durationOption("defaultPeriod", options.defaultPeriod ?? defaults.defaultPeriod, 0),
    cleanupInterval: durationOption("cleanupInterval", options.cleanupInterval ?? defaults.cleanupInterval, 0),
    maxValueBytes: positiveInteger("maxValueBytes", options.maxValueBytes ?? defaults.maxValueBytes),
    batchSize: positiveInteger("cleanupBatchSize", options.cleanupBatchSize ?? defaults.cleanupBatchSize)
  })

/**
 * Builds the service from a backend: validation, hashing, expiry arithmetic, the `modify` retry loop and the
 * cleanup fiber, which is forked into the current scope and stops when it closes.
 *
 * @since 0.1.0
 */
export const make = <E>(
  backend: Backend<E>,
  options: Options = {}
): Effect.Effect<Service, InvalidConfig, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* validateConfig(options)
    const defaultPeriod = yield* Ref.make(config.period)

    const failure = (operation: string) => (cause: E) => new SessionStoreError({ operation, cause })
    const notFound = Effect.fail(new NotFound())
    const expired = Effect.fail(new Expired())

    const expiresAt = (now: number, expiry: Duration.DurationInput | undefined) =>
      expiry === undefined
        ? Effect.map(Ref.get(defaultPeriod), (period) => now + period)
        : Effect.map(expiryMillis(expiry), (ms) => now + ms)

    const checkValue = (value: string): Effect.Effect<void, InvalidValue> => {
      const bytes = Buffer.byteLength(value, "utf8")
      if (bytes > config.maxValueBytes) {
        return Effect.fail(new InvalidValue({ reason: "TooLarge", bytes, maxBytes: config.maxValueBytes }))
      }
      if (!value.isWellFormed() || value.includes("\u0000")) {
        return Effect.fail(new InvalidValue({ reason: "NotWellFormed", bytes, maxBytes: config.maxValueBytes }))
      }
      return Effect.void
    }

    /** Runs `f` with the hashed key, or fails with `onMalformed` without any I/O. */
    const withId = <A, E2, R, E3>(
      key: string,
      onMalformed: Effect.Effect<A, E3>,
      f: (id: Uint8Array) => Effect.Effect<A, E2, R>
    ): Effect.Effect<A, E2 | E3, R> => SessionKey.isSessionKey(key) ? f(SessionKey.hash(key)) : onMalformed

    /** A revision names its row too, so a `from` read from another session is never mistaken for this one's. */
    const revisionOf = (id: Uint8Array, version: string) => `${version}.${Buffer.from(id.subarray(0, 6)).toString("base64url")}`
    const versionOf = (id: Uint8Array, revision: string) => {
      const [version, tag] = revision.split(".")
      return tag === Buffer.from(id.subarray(0, 6)).toString("base64url") ? version : undefined
    }

    const live = (row: Row | undefined, now: number): Effect.Effect<Row, NotFound | Expired> =>
      row === undefined ? notFound : now > row.expiresAt ? expired : Effect.succeed(row)

    const modifyOnce = (
      id: Uint8Array,
      f: (current: string) => string,
      expiry: Duration.DurationInput | undefined,
      known: { readonly value: string; readonly version: string } | undefined
    ) =>
      Effect.gen(function*() {
        const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        const row = known ?? (yield* live(yield* Effect.mapError(backend.find(id), failure("modify")), now))
        const value = f(row.value)
        yield* checkValue(value)
        const until = expiry === undefined ? undefined : yield* expiresAt(now, expiry)
        const written = yield* Effect.mapError(
          backend.compareAndSet(id, row.version, value, until, now),
          failure("modify")
        )
        return written ? { value } : undefined
      })

    const deleteExpired = Effect.gen(function*() {
      const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      let total = 0
      while (true) {
        const deleted = yield* Effect.mapError(
          backend.deleteExpiredBatch(now, config.batchSize),
          failure("deleteExpired")
        )
        total += deleted
        if (deleted < config.batchSize) return total
        yield* Effect.yieldNow()
      }
    })

    const service: Service = {
      defaultPeriod: Effect.map(Ref.get(defaultPeriod), Duration.millis),
      setDefaultPeriod: (period) =>
        expiryMillis(period).pipe(
          Effect.filterOrFail((ms) => ms >= 0, () => new InvalidExpiry({ input: String(period) })),
          Effect.flatMap((ms) => Ref.set(defaultPeriod, ms))
        ),
      generate: (options = {}) =>
        Effect.gen(function*() {
          const value = options.value ?? ""
          yield* checkValue(value)
          const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
          const until = yield* expiresAt(now, options.expiry)
          const key = SessionKey.generate()
          yield* Effect.mapError(backend.insert(SessionKey.hash(key), value, until, now), failure("generate"))
          return key
        }),
      // The hottest path of an HTTP app: kept free of generators.
      get: (key) =>
        withId(key, notFound, (id) =>
          Effect.flatMap(
            Effect.mapError(backend.find(id), failure("get")),
            (row) =>
              Effect.clockWith((clock) => {
                const now = clock.unsafeCurrentTimeMillis()
                return Effect.map(live(row, now), (row): StoredSession => ({
                  value: row.value,
                  expiresIn: Duration.millis(row.expiresAt - now),
                  revision: revisionOf(id, row.version)
                }))
              })
          )),
      set: (key, value, options = {}) =>
        withId(key, notFound, (id) =>
          Effect.gen(function*() {
            yield* checkValue(value)
            const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
            const until = yield* expiresAt(now, options.expiry)
            yield* Effect.mapError(backend.upsert(id, value, until, now), failure("set"))
          })),
      touch: (key, options = {}) =>
        withId(key, notFound, (id) =>
          Effect.gen(function*() {
            const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
            const until = yield* expiresAt(now, options.expiry)
            const outcome = yield* Effect.mapError(backend.touch(id, until, now), failure("touch"))
            if (outcome === "missing") return yield* notFound
            if (outcome === "expired") return yield* expired
          })),
      modify: (key, f, options = {}) =>
        withId(key, notFound, (id) =>
          Effect.gen(function*() {
            const version = options.from && versionOf(id, options.from.revision)
            const from = version === undefined ? undefined : { value: options.from!.value, version }
            for (let attempt = 1; attempt <= maxModifyAttempts; attempt++) {
              const written = yield* modifyOnce(id, f, options.expiry, attempt === 1 ? from : undefined)
              if (written !== undefined) return written.value
              yield* Effect.yieldNow()
            }
            return yield* new SessionStoreError({
              operation: "modify",
              cause: new Error(`gave up after ${maxModifyAttempts} conflicting concurrent writes`)
            })
          })),
      clear: (key) => withId(key, Effect.void, (id) => Effect.mapError(backend.remove(id), failure("clear"))),
      deleteExpired
    }

    if (config.cleanupInterval > 0) {
      const pause = Effect.flatMap(
        Random.nextRange(0.8, 1.2),
        (jitter) => Effect.sleep(Duration.millis(Math.round(config.cleanupInterval * jitter)))
      )
      const sweep = deleteExpired.pipe(
        Effect.tap((removed) => removed > 0 ? Effect.logDebug(`removed ${removed} expired sessions`) : Effect.void),
        Effect.catchAllCause((cause) => Effect.logWarning("session cleanup failed; will retry", cause))
      )
      yield* pause.pipe(
        Effect.zipRight(sweep),
        Effect.forever,
        Effect.annotateLogs("service", "effect-session/SessionStore"),
        Effect.forkScoped
      )
    }
    return service
  })
