/**
 * The rules of the session store, one top-level function per operation over a {@link Store} that
 * `SessionStore.make` wires: validation, hashing (once per call), expiry arithmetic (absolute from here to the
 * backend), deadlines, and the mapping of what a backend reports to typed errors.
 */
import { Chunk, DateTime, Duration, Effect, Either, Option, Stream } from "effect"
import {
  Expired,
  InvalidExpiry,
  type InvalidSubject,
  InvalidValue,
  NotFound,
  Rotated,
  SessionStoreError
} from "../SessionError.js"
import * as SessionKey from "../SessionKey.js"
import { encode } from "./bytes.js"
import * as Deadline from "./deadline.js"
import * as Observability from "./observability.js"
import { finiteMillis, maxPeriodMillis } from "./options.js"
import * as OwnerCheck from "./owner.js"
import {
  type Backend,
  defaults,
  type ExpiryOptions,
  type InfoRow,
  type ModifyOptions,
  type Owner,
  type Refusal,
  type RotateOptions,
  type Rotation,
  type Row,
  type SessionInfo,
  type StoredSession
} from "./storeModel.js"
import * as WriteQueue from "./writeQueue.js"

/** The validated options of a store; `defaultPeriod` changes with `setDefaultPeriod`. */
export interface Config {
  defaultPeriod: number
  readonly maxValueBytes: number
  readonly cleanupInterval: number
  readonly batchSize: number
  readonly timeout: number
}

/** A backend and the options it runs with: what a single backend call needs. */
export interface Backed<E> {
  readonly backend: Backend<E>
  readonly config: Config
}

/** What every operation works on: the backend, the options, and the write queues. */
export interface Store<E> extends Backed<E> {
  readonly writes: WriteQueue.WriteQueue
}

/** Sessions per page of `all`; sessions per `list`. */
const pageSize = 500
const listLimit = 1000

export const currentTime = Effect.clockWith((clock) => clock.currentTimeMillis)

const notFound = Effect.fail(new NotFound())
const expired = Effect.fail(new Expired())
const rotated = Effect.fail(new Rotated())

/** What a backend reported of a row it did not change, as the error; nothing when it changed it. */
const refused = (outcome: Refusal | "written" | "touched" | "set"): Effect.Effect<void, NotFound | Expired | Rotated> =>
  outcome === "missing" ? notFound : outcome === "expired" ? expired : outcome === "rotated" ? rotated : Effect.void

/** A backend's failure as `SessionStoreError`; a store's own (its deadline's) as it is. */
const storeError = (operation: Observability.StoreOperation) => (cause: unknown) =>
  cause instanceof SessionStoreError ? cause : new SessionStoreError({ operation, cause })

/** A backend call bounded by the deadline, unless the backend enforces it itself (every built-in one does). */
const bounded = <A, E>(store: Backed<E>, operation: Observability.StoreOperation, effect: Effect.Effect<A, E>) =>
  store.backend.enforcesDeadline === true
    ? effect
    : Deadline.within(effect, store.config.timeout, () => Deadline.timedOut(operation, store.config.timeout))

/** A backend call: bounded by the deadline, timed, its failures become `SessionStoreError`. */
export const call = <A, E>(store: Backed<E>, operation: Observability.StoreOperation, effect: Effect.Effect<A, E>) =>
  Observability.timed(operation, bounded(store, operation, effect), storeError(operation))

/** An operation as a span (when a tracer is installed). */
const measured = <A, E, E2>(
  store: Store<E>,
  operation: Observability.StoreOperation,
  effect: Effect.Effect<A, E2>,
  attributes?: () => Record<string, unknown>
) => Observability.storeSpan(store.backend.name ?? "custom", operation, effect, attributes)

/** Runs `f` with the hashed key, or `onMalformed` without any I/O. */
const withId = <A, E, R, E2>(
  key: string,
  onMalformed: Effect.Effect<A, E2>,
  f: (id: Uint8Array) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | E2, R> => SessionKey.isSessionKey(key) ? f(SessionKey.hash(key)) : onMalformed

const invalidExpiry = (input: unknown) => new InvalidExpiry({ input: String(input) })

/** A duration in milliseconds, or `InvalidExpiry`. */
export const expiryMillis = (input: Duration.DurationInput): Either.Either<number, InvalidExpiry> => {
  const ms = finiteMillis(input)
  return ms === undefined ? Either.left(invalidExpiry(input)) : Either.right(ms)
}

/** When a write made at `now` leaves the session expiring (epoch ms), or `InvalidExpiry`. */
const expiresAtOf = (store: Store<unknown>, options: ExpiryOptions, now: number): Either.Either<number, InvalidExpiry> => {
  if (options.expiresAt !== undefined) {
    const at = DateTime.toEpochMillis(options.expiresAt)
    return Math.abs(at - now) <= maxPeriodMillis ? Either.right(at) : Either.left(invalidExpiry(DateTime.formatIso(options.expiresAt)))
  }
  return options.expiry === undefined
    ? Either.right(now + store.config.defaultPeriod)
    : Either.map(expiryMillis(options.expiry), (ms) => now + ms)
}

/** Why a value cannot be stored, if it cannot. */
export const invalidValue = (store: Backed<unknown>, value: string): InvalidValue | undefined => {
  const { maxValueBytes } = store.config
  const bytes = Buffer.byteLength(value, "utf8")
  if (bytes > maxValueBytes) return new InvalidValue({ reason: "TooLarge", bytes, maxBytes: maxValueBytes })
  if (!OwnerCheck.wellFormed(value)) return new InvalidValue({ reason: "NotWellFormed", bytes, maxBytes: maxValueBytes })
  return undefined
}

const checkValue = (store: Store<unknown>, value: string): Effect.Effect<void, InvalidValue> => {
  const invalid = invalidValue(store, value)
  return invalid === undefined ? Effect.void : Effect.fail(invalid)
}

const base64url = (bytes: Uint8Array) => encode(bytes, "base64url")

const infoOf = (row: InfoRow): SessionInfo => ({
  id: base64url(row.id),
  subject: row.subject,
  audience: row.audience,
  metadata: row.metadata === null ? {} : JSON.parse(row.metadata),
  createdAt: DateTime.unsafeMake(row.createdAt),
  expiresAt: DateTime.unsafeMake(row.expiresAt),
  lastSeenAt: DateTime.unsafeMake(row.lastSeenAt)
})

/** A revision names its row too, so a `from` read from another session is never mistaken for this one's. */
const rowTag = (id: Uint8Array) => encode(id, "base64url", 6)

/** What an earlier `get` of the key `id` says the row holds, if it is that row's and writable. */
const knownFrom = (id: Uint8Array, from: StoredSession | undefined): WriteQueue.Current | undefined => {
  if (from === undefined || from.rotated) return undefined
  const [version, tag] = from.revision.split(".")
  const family = SessionKey.digestOfId(from.id)
  return version !== undefined && tag === rowTag(id) && family !== undefined
    ? { value: from.value, version, family }
    : undefined
}

/** The read of a queued write: the live, unrotated row. */
export const readForWrite = <E>(store: Backed<E>) => (id: Uint8Array) =>
  Effect.flatMap(
    Effect.zip(call(store, "modify", store.backend.find({ id })), currentTime),
    ([row, now]): Effect.Effect<WriteQueue.Current, NotFound | Expired | Rotated> =>
      row === undefined ? notFound : now > row.expiresAt ? expired : row.rotated ? rotated : Effect.succeed(row)
  )

/** Queues a write and waits for it, within the deadline; a caller that gives up withdraws its job. */
const queued = <E, A>(
  store: Store<E>,
  operation: "modify" | "rotate",
  id: Uint8Array,
  from: StoredSession | undefined,
  job: WriteQueue.Job & { readonly result: WriteQueue.Outcome<A> }
) =>
  Effect.suspend(() => {
    const known = knownFrom(id, from)
    const { backend, config, writes } = store
    const submit = backend.inTransaction === undefined
      ? writes.submit(id, job, known)
      : Effect.flatMap(backend.inTransaction, (inTransaction) =>
        inTransaction ? writes.runAlone(id, job, known) : writes.submit(id, job, known))
    const waited = Effect.zipRight(
      submit,
      WriteQueue.awaitOutcome(job, config.timeout, () => Deadline.timedOut(operation, config.timeout))
    ) as Effect.Effect<A, WriteQueue.WriteError>
    return measured(store, operation, Observability.timed(operation, waited, (error) => error), () => ({
      "session.attempts": job.attempts
    }))
  })

const newJob = <A>() => ({ result: new WriteQueue.Outcome<A>(), abandoned: false, attempts: 0 })

export const generate = <E>(
  store: Store<E>,
  options: ExpiryOptions & Owner & { readonly value?: string | undefined }
): Effect.Effect<SessionKey.SessionKey, InvalidValue | InvalidExpiry | InvalidSubject | SessionStoreError> =>
  measured(
    store,
    "generate",
    Effect.gen(function*() {
      const value = options.value ?? ""
      yield* checkValue(store, value)
      const owner = (yield* OwnerCheck.stored(options)) ?? OwnerCheck.none
      const now = yield* currentTime
      const expiresAt = yield* expiresAtOf(store, options, now)
      const key = SessionKey.generate()
      yield* call(store, "generate", store.backend.insert({ id: SessionKey.hash(key), value, expiresAt, now, owner }))
      return key
    })
  )

/** A row read by `get` at `now`, as the caller sees it. */
const sessionOf = (id: Uint8Array, row: Row | undefined, now: number): Effect.Effect<StoredSession, NotFound | Expired> => {
  if (row === undefined) return notFound
  if (now > row.expiresAt) return expired
  return Effect.succeed<StoredSession>({
    value: row.value,
    expiresIn: Duration.millis(row.expiresAt - now),
    revision: `${row.version}.${rowTag(id)}`,
    rotated: row.rotated,
    subject: row.subject,
    audience: row.audience,
    id: base64url(row.family)
  })
}

// The hottest path of an HTTP app: one backend call, measured in the same step (see Observability.measuredCall).
export const get = <E>(store: Store<E>, key: string): Effect.Effect<StoredSession, NotFound | Expired | SessionStoreError> =>
  withId(key, measured(store, "get", notFound), (id) =>
    Observability.measuredCall(
      store.backend.name ?? "custom",
      "get",
      bounded(store, "get", store.backend.find({ id })),
      storeError("get"),
      (row, now) => sessionOf(id, row, now)
    ))

export const set = <E>(store: Store<E>, key: string, value: string, options: ExpiryOptions) =>
  measured(
    store,
    "set",
    withId(key, notFound, (id) =>
      Effect.gen(function*() {
        yield* checkValue(store, value)
        const now = yield* currentTime
        const expiresAt = yield* expiresAtOf(store, options, now)
        yield* refused(yield* call(store, "set", store.backend.upsert({ id, value, expiresAt, now })))
      }))
  )

export const touch = <E>(store: Store<E>, key: string, options: ExpiryOptions) =>
  measured(
    store,
    "touch",
    withId(key, notFound, (id) =>
      Effect.gen(function*() {
        const now = yield* currentTime
        const expiresAt = yield* expiresAtOf(store, options, now)
        yield* refused(yield* call(store, "touch", store.backend.touch({ id, expiresAt, now })))
      }))
  )

export const modify = <E>(store: Store<E>, key: string, f: (current: string) => string, options: ModifyOptions) =>
  withId(key, notFound, (id) =>
    Effect.gen(function*() {
      const owner = yield* OwnerCheck.stored(options)
      // An absolute expiry needs no clock; a relative one is measured from now.
      const expiresAt = options.expiresAt !== undefined
        ? DateTime.toEpochMillis(options.expiresAt)
        : options.expiry === undefined
        ? undefined
        : yield* expiresAtOf(store, options, yield* currentTime)
      return yield* queued(store, "modify", id, options.from, {
        _tag: "Modify",
        f,
        expiresAt,
        owner,
        ...newJob<string>()
      })
    }))

export const rotate = <E>(store: Store<E>, key: string, f: (current: string) => string, options: RotateOptions) =>
  withId(key, notFound, (id) =>
    Effect.gen(function*() {
      const owner = yield* OwnerCheck.stored(options)
      const expiresAt = yield* expiresAtOf(store, options, yield* currentTime)
      const staleTimeout = yield* expiryMillis(options.staleTimeout ?? defaults.staleTimeout)
      return yield* queued(store, "rotate", id, options.from, {
        _tag: "Rotate",
        f,
        expiresAt,
        staleTimeout: Math.max(0, staleTimeout),
        owner,
        ...newJob<Rotation>()
      })
    }))

export const setSubject = <E>(store: Store<E>, key: string, subject: string | null, options: Omit<Owner, "subject">) =>
  measured(
    store,
    "setSubject",
    withId(key, notFound, (id) =>
      Effect.gen(function*() {
        const owner = (yield* OwnerCheck.stored({ ...options, subject })) ?? OwnerCheck.none
        const now = yield* currentTime
        yield* refused(yield* call(store, "setSubject", store.backend.setOwner({ id, owner, now })))
      }))
  )

/** A subject and audience to look sessions up by, checked, and the time now. */
const lookup = (subject: string, audience: string | undefined) =>
  Effect.all({
    subject: Either.map(OwnerCheck.name("subject", subject), (checked) => checked!),
    audience: Either.map(OwnerCheck.name("audience", audience), (checked) => checked ?? undefined),
    now: currentTime
  })

export const list = <E>(store: Store<E>, subject: string, options: { readonly audience?: string | undefined }) =>
  measured(
    store,
    "list",
    Effect.flatMap(lookup(subject, options.audience), (query) =>
      Effect.map(call(store, "list", store.backend.list({ ...query, limit: listLimit })), (rows) => rows.map(infoOf)))
  )

export const revoke = <E>(store: Store<E>, id: string, options: { readonly subject?: string | undefined }) => {
  const family = SessionKey.digestOfId(id)
  return measured(
    store,
    "revoke",
    family === undefined ? notFound : Effect.flatMap(currentTime, (now) =>
      Effect.flatMap(
        call(store, "revoke", store.backend.revoke({ family, subject: options.subject, now })),
        (ended) => ended ? Effect.void : notFound
      ))
  )
}

export const revokeSubject = <E>(
  store: Store<E>,
  subject: string,
  options: { readonly audience?: string | undefined; readonly except?: string | undefined }
) =>
  measured(
    store,
    "revokeSubject",
    Effect.gen(function*() {
      const query = yield* lookup(subject, options.audience)
      const except = options.except === undefined ? undefined : SessionKey.digestOfId(options.except)
      if (options.except !== undefined && except === undefined) return yield* notFound
      return yield* call(store, "revokeSubject", store.backend.revokeSubject({ ...query, except }))
    })
  )

/** Every live session, a page (and a span) at a time: a stream has no single extent a span could cover. */
export const all = <E>(store: Store<E>): Stream.Stream<SessionInfo, SessionStoreError> =>
  Stream.paginateChunkEffect(undefined as Uint8Array | undefined, (after) =>
    measured(
      store,
      "all",
      Effect.flatMap(currentTime, (now) =>
        Effect.map(call(store, "all", store.backend.page({ after, now, limit: pageSize })), (rows) =>
          [
            Chunk.fromIterable(rows.map(infoOf)),
            rows.length < pageSize ? Option.none() : Option.some(rows[rows.length - 1]!.id)
          ] as const))
    ))

export const clear = <E>(store: Store<E>, key: string) =>
  measured(
    store,
    "clear",
    withId(key, Effect.void, (id) =>
      Effect.flatMap(currentTime, (now) => call(store, "clear", store.backend.clear({ id, now }))))
  )

/**
 * Whether this instance runs the background cleanup now: the backend's claim among the instances sharing its storage
 * (runs at least `spacing` ms apart), or always on a backend of one process.
 */
export const claimCleanup = <E>(store: Store<E>, spacing: number) => {
  const claim = store.backend.claimCleanup
  if (claim === undefined) return Effect.succeed(true)
  return Effect.flatMap(currentTime, (now) => call(store, "deleteExpired", claim({ now, spacing })))
}

export const deleteExpired = <E>(store: Store<E>) =>
  measured(
    store,
    "deleteExpired",
    Effect.gen(function*() {
      const now = yield* currentTime
      const limit = store.config.batchSize
      let total = 0
      while (true) {
        const deleted = yield* call(store, "deleteExpired", store.backend.deleteExpired({ now, limit }))
        total += deleted
        if (deleted < limit) return total
        yield* Effect.yieldNow()
      }
    })
  )
