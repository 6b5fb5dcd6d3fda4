/**
 * The `SessionStore` service: the Effect parallel of OCaml's `Session.S.Future` signature.
 *
 * Values are strings; keys are {@link SessionKey.SessionKey}s. Every backend (PostgreSQL, memory, ...) is a small
 * {@link Backend} turned into the service by {@link make}, so the semantics below hold everywhere:
 *
 * - time comes from Effect's `Clock` (so `TestClock` drives expiry); a session is expired when `now > expiresAt`,
 *   and a remaining period of exactly zero is still valid;
 * - `set` is an upsert that never revives an ended, expired or rotated session; `clear` is idempotent; `touch`
 *   changes the expiry only;
 * - `modify` is an atomic read-modify-write, so concurrent updates are never lost: concurrent `modify`s of one key in
 *   this process are merged into one compare-and-set, and conflicts with other processes are retried;
 * - `rotate` moves a session to a new key atomically; the old key stays readable, read-only, for a stale period;
 * - a session keeps one public id across rotations; `revoke`, `revokeSubject` and `clear` end every key of it, even
 *   one made by a rotation running at the same moment, and nothing brings an ended session back;
 * - every operation has a deadline (`timeout`, default 3 seconds), after which it fails with `SessionStoreError`;
 * - keys are hashed with SHA-256 before they reach the backend; a malformed key is `NotFound` without any I/O;
 * - bad input (oversized or malformed value, non-finite expiry) fails with a typed error and writes nothing.
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Schedule, type Scope, type Stream } from "effect"
import * as FailureLog from "./internal/failureLog.js"
import * as Observability from "./internal/observability.js"
import { durationOption, positiveInteger } from "./internal/options.js"
import type {
  Backend,
  ExpiryOptions,
  ModifyOptions,
  Options,
  Owner,
  RotateOptions,
  Rotation,
  SessionInfo,
  StoredSession
} from "./internal/storeModel.js"
import { defaults as storeDefaults } from "./internal/storeModel.js"
import * as Operations from "./internal/storeOperations.js"
import * as WriteQueue from "./internal/writeQueue.js"
import {
  type Expired,
  type InvalidConfig,
  InvalidExpiry,
  type InvalidSubject,
  type InvalidValue,
  type NotFound,
  type Rotated,
  type SessionStoreError
} from "./SessionError.js"
import * as SessionKey from "./SessionKey.js"

/**
 * The models of the store (`StoredSession`, `Owner`, `SessionInfo`, the options of its operations, `Rotation`),
 * its options, and the contract of a backend (`Backend`, `Row`, `InfoRow`, `StoredOwner`, `Refusal`).
 *
 * @since 0.1.0
 * @category models
 */
export type {
  Backend,
  ExpiryOptions,
  InfoRow,
  ModifyOptions,
  Options,
  Owner,
  Refusal,
  RotateOptions,
  Rotation,
  Row,
  SessionInfo,
  StoredOwner,
  StoredSession
} from "./internal/storeModel.js"

/**
 * Options that name no owner: operations given them cannot fail with `InvalidSubject`, and their types say so.
 *
 * @since 0.3.0
 * @category models
 */
export interface NoOwner {
  readonly subject?: undefined
  readonly audience?: undefined
  readonly metadata?: undefined
}

/**
 * A write of `f(current)` whose options may name an owner: with one it can also fail with `InvalidSubject`.
 *
 * @since 0.3.0
 * @category models
 */
export interface OwnedWrite<O, A, E> {
  (key: string, f: (current: string) => string, options?: O & NoOwner): Effect.Effect<A, E>
  (key: string, f: (current: string) => string, options: O): Effect.Effect<A, E | InvalidSubject>
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
  readonly setDefaultPeriod: (period: Duration.Input) => Effect.Effect<void, InvalidExpiry>
  /** Allocates a new session (value defaults to the empty string), optionally owned, and returns its key. */
  readonly generate: {
    (
      options?: ExpiryOptions & NoOwner & { readonly value?: string | undefined }
    ): Effect.Effect<SessionKey.SessionKey, InvalidValue | InvalidExpiry | SessionStoreError>
    (
      options: ExpiryOptions & Owner & { readonly value?: string | undefined }
    ): Effect.Effect<SessionKey.SessionKey, InvalidValue | InvalidExpiry | InvalidSubject | SessionStoreError>
  }
  /** The value and remaining period of a live session (also of a rotated one, during its stale period). */
  readonly get: (key: string) => Effect.Effect<StoredSession, NotFound | Expired | SessionStoreError>
  /**
   * Sets the value and expiry of a live session, or creates it under a key the store does not know (upsert). A
   * key whose session ended (cleared or revoked) is `NotFound`, an expired one `Expired` and a rotated one
   * `Rotated`: `set` never brings a session back. (The store forgets a key once cleanup removes its row, after
   * its expiry; from then on `set` creates a new session under it.)
   */
  readonly set: (
    key: string,
    value: string,
    options?: ExpiryOptions
  ) => Effect.Effect<void, NotFound | Expired | Rotated | InvalidValue | InvalidExpiry | SessionStoreError>
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
  readonly modify: OwnedWrite<
    ModifyOptions,
    string,
    NotFound | Expired | Rotated | InvalidValue | InvalidExpiry | SessionStoreError
  >
  /**
   * Atomically moves a live session to a new key holding `f(current)` (call it on login, against session fixation).
   * The old key keeps exactly the value it had, read-only, for `staleTimeout`, then it is gone: it can never be
   * written, touched, extended or rotated again. Writes queued before the rotation land in both; writes after it
   * fail with `Rotated`. If anything fails, nothing changes.
   */
  readonly rotate: OwnedWrite<
    RotateOptions,
    Rotation,
    NotFound | Expired | Rotated | InvalidValue | InvalidExpiry | SessionStoreError
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
   * Ends the session with this id (`StoredSession.id`, `SessionInfo.id`) at once, everywhere: every key it had,
   * including one a concurrent rotation is making. With `subject`, only if it belongs to that subject (what a
   * "your sessions" page must use). An unknown, ended or malformed id is `NotFound`.
   */
  readonly revoke: (
    id: string,
    options?: { readonly subject?: string | undefined }
  ) => Effect.Effect<void, NotFound | SessionStoreError>
  /**
   * Ends every session of a subject (of one audience, if given), every key of each as `revoke` does, except the
   * session whose id is `except` ("log out everywhere else": the current session's `StoredSession.id`); returns
   * how many live sessions ended. A malformed `except` is `NotFound`, and nothing ends.
   */
  readonly revokeSubject: (
    subject: string,
    options?: { readonly audience?: string | undefined; readonly except?: string | undefined }
  ) => Effect.Effect<number, NotFound | InvalidSubject | SessionStoreError>
  /** Every live session, in pages of 500 (the scs `All()` parallel, for admin tools). */
  readonly all: Stream.Stream<SessionInfo, SessionStoreError>
  /**
   * Ends the session of this key: every key it had, at once (a key rotated away ends alone). Idempotent: clearing
   * an unknown, ended or malformed key succeeds.
   */
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
export class SessionStore extends Context.Service<SessionStore, Service>()("effect-session/SessionStore") {}

/**
 * The defaults of {@link Options}, and the stale period of `rotate`.
 *
 * @since 0.1.0
 * @category options
 */
export const defaults = storeDefaults

const validateConfig = (options: Options) =>
  Effect.all({
    defaultPeriod: durationOption("defaultPeriod", options.defaultPeriod ?? defaults.defaultPeriod, 0),
    cleanupInterval: durationOption("cleanupInterval", options.cleanupInterval ?? defaults.cleanupInterval, 0),
    maxValueBytes: positiveInteger("maxValueBytes", options.maxValueBytes ?? defaults.maxValueBytes),
    batchSize: positiveInteger("cleanupBatchSize", options.cleanupBatchSize ?? defaults.cleanupBatchSize),
    timeout: durationOption("timeout", options.timeout ?? defaults.timeout, 1)
  })

/**
 * The cleanup fiber's one run: claimed among the instances sharing the storage (so that, each waking every interval
 * ±20%, they run it once per interval between them), counted, logged, and never failing.
 */
const sweep = <E>(store: Operations.Store<E>, logFailure: ReturnType<typeof FailureLog.make>) =>
  Operations.claimCleanup(store, store.config.cleanupInterval * 0.75).pipe(
    Effect.flatMap((claimed) =>
      claimed
        ? Effect.tap(Operations.deleteExpired(store), (removed) =>
          Effect.all([
            Observability.count(Observability.cleanupRuns),
            Observability.count(Observability.cleanupRemoved, removed),
            removed > 0 ? Effect.logDebug(`removed ${removed} expired sessions`) : Effect.void
          ], { discard: true }))
        : Effect.logDebug("cleanup left to the instance that ran it within this interval")
    ),
    Effect.catch((error) => logFailure("cleanup", error, "Warning"))
  )

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
    const config: Operations.Config = { ...yield* validateConfig(options) }
    const scope = yield* Effect.scope
    const logFailure = FailureLog.make("effect-session/SessionStore")
    const backed: Operations.Backed<E> = { backend, config }
    const writes = WriteQueue.make({
      now: Operations.currentTime,
      read: Operations.readForWrite(backed),
      compareAndSet: (write) => Operations.call(backed, "modify", backend.compareAndSet(write)),
      rotate: (rotation) => Operations.call(backed, "rotate", backend.rotate(rotation)),
      rotationKey: backend.rotationKey ?? (() => SessionKey.generate()),
      checkValue: (value) => Operations.invalidValue(backed, value),
      onDefect: (cause) => logFailure("write queue (defect)", cause)
    }, scope)
    const store: Operations.Store<E> = { ...backed, writes }

    const service: Service = {
      defaultPeriod: Effect.sync(() => Duration.millis(config.defaultPeriod)),
      setDefaultPeriod: (period) =>
        Effect.flatMap(
          Effect.filterOrFail(Effect.fromResult(Operations.expiryMillis(period)), (ms) => ms >= 0, () => new InvalidExpiry({ input: String(period) })),
          (ms) => Effect.sync(() => void (config.defaultPeriod = ms))
        ),
      generate: ((options = {}) => Operations.generate(store, options)) as Service["generate"],
      get: (key) => Operations.get(store, key),
      set: (key, value, options = {}) => Operations.set(store, key, value, options),
      touch: (key, options = {}) => Operations.touch(store, key, options),
      modify: ((key: string, f: (current: string) => string, options: ModifyOptions = {}) =>
        Operations.modify(store, key, f, options)) as Service["modify"],
      rotate: ((key: string, f: (current: string) => string, options: RotateOptions = {}) =>
        Operations.rotate(store, key, f, options)) as Service["rotate"],
      setSubject: (key, subject, options = {}) => Operations.setSubject(store, key, subject, options),
      list: (subject, options = {}) => Operations.list(store, subject, options),
      revoke: (id, options = {}) => Operations.revoke(store, id, options),
      revokeSubject: (subject, options = {}) => Operations.revokeSubject(store, subject, options),
      all: Operations.all(store),
      clear: (key) => Operations.clear(store, key),
      deleteExpired: Operations.deleteExpired(store)
    }

    if (config.cleanupInterval > 0) {
      // Every interval ±20%, so that instances started together do not all wake at once.
      yield* sweep(store, logFailure).pipe(
        Effect.schedule(Schedule.spaced(Duration.millis(config.cleanupInterval)).pipe(Schedule.jittered)),
        Effect.annotateLogs("service", "effect-session/SessionStore"),
        // Started at once (Effect 4 starts a forked fiber later, on its scheduler), so that its first sleep is on the
        // clock when the layer is built: a `TestClock` adjusted right after wakes it, as on Effect 3.
        Effect.forkScoped({ startImmediately: true })
      )
    }
    return service
  })
