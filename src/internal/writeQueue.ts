/**
 * Writes to one session, serialised and merged within this process.
 *
 * Every `modify` and `rotate` of a key joins that key's queue. One fiber per busy key drains it: all `modify`s
 * waiting at that moment are applied in order to one read of the session and written with one compare-and-set, so
 * 64 concurrent writers on a hot session cost a handful of statements instead of one lost race after another. A
 * `rotate` is applied after the writes queued before it (so the old key keeps them) and everything queued after it
 * fails with `Rotated`. Conflicts can then only come from other processes; they are retried on a jittered
 * exponential `Schedule`, re-reading and re-applying (which is why `f` must be pure).
 */
import { type Cause, Effect, Exit, Schedule, type Scope } from "effect"
import { type Expired, type InvalidValue, type NotFound, type Rotated, SessionStoreError } from "../SessionError.js"
import * as SessionKey from "../SessionKey.js"
import type { Backend, Rotation, StoredOwner } from "../SessionStore.js"
import * as Observability from "./observability.js"

/** A session's value and the row version it was read at. */
export interface Current {
  readonly value: string
  readonly version: string
}

/** What a queued write can fail with. */
export type WriteError = NotFound | Expired | Rotated | InvalidValue | SessionStoreError

/**
 * Where a job's caller waits for its outcome: settled once, later settlements ignored (the caller's deadline and the
 * write race for it). A `Deferred` does the same at about ten times the cost, which showed on every write.
 */
export class Outcome<A> {
  private exit: Exit.Exit<A, WriteError> | undefined
  private waiter: ((exit: Exit.Exit<A, WriteError>) => void) | undefined

  /** Settles the outcome, unless it was settled already. */
  settle(exit: Exit.Exit<A, WriteError>): void {
    if (this.exit !== undefined) return
    this.exit = exit
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.(exit)
  }

  /** Waits for the outcome (at once when settled). One waiter: the job's caller. */
  get await(): Effect.Effect<A, WriteError> {
    return Effect.async<A, WriteError>((resume) => {
      if (this.exit !== undefined) return resume(this.exit)
      this.waiter = resume
      return Effect.sync(() => {
        if (this.waiter === resume) this.waiter = undefined
      })
    })
  }
}

interface JobBase<A> {
  readonly f: (current: string) => string
  readonly result: Outcome<A>
  /** Set when the caller gave up (deadline): the job is dropped unless its batch already started. */
  abandoned: boolean
  /** Statements tried for this job so far (a span attribute). */
  attempts: number
}

/**
 * `modify`: replace the value with `f(value)`; `expiry` (ms from the write) resets the expiry and `owner` the owner
 * when given.
 */
export interface ModifyJob extends JobBase<string> {
  readonly _tag: "Modify"
  readonly expiry: number | undefined
  readonly owner: StoredOwner | undefined
}

/**
 * `rotate`: a new key holding `f(value)` for `expiry` ms, owned by `owner` (or by the old row's owner); the old key
 * keeps its value for `staleTimeout` ms.
 */
export interface RotateJob extends JobBase<Rotation> {
  readonly _tag: "Rotate"
  readonly expiry: number
  readonly staleTimeout: number
  readonly owner: StoredOwner | undefined
}

export type Job = ModifyJob | RotateJob

/** The store operations the queue runs (each already bounded by a deadline). */
export interface Operations {
  readonly now: Effect.Effect<number>
  /** The live, unrotated session, or why there is none. */
  readonly read: (id: Uint8Array) => Effect.Effect<Current, NotFound | Expired | Rotated | SessionStoreError>
  /** Compare-and-set: the backend's, failures mapped. */
  readonly write: Backend<SessionStoreError>["compareAndSet"]
  /** Atomic rotation: the backend's, failures mapped. */
  readonly rotate: Backend<SessionStoreError>["rotate"]
  readonly checkValue: (value: string) => InvalidValue | undefined
  /** Reports a defect in a batch (its callers fail with it at once). */
  readonly onDefect: (cause: Cause.Cause<unknown>) => Effect.Effect<void>
}

const conflict = { _tag: "Conflict" } as const
type Conflict = typeof conflict
/** By tag: the error that reaches a retry predicate need not be the instance that was failed with. */
const isConflict = (error: WriteError | Conflict): error is Conflict => error._tag === "Conflict"

/**
 * Retries after a lost compare-and-set: twice at once (a single competitor has just written), then with jittered
 * exponential backoff from 2 ms, never more than 50 ms apart, for as long as a caller still waits.
 */
const conflictBackoff = Schedule.recurs(1).pipe( // after the first retry, which `retryingConflicts` makes at once
  Schedule.andThen(
    Schedule.exponential("2 millis").pipe(Schedule.union(Schedule.spaced("50 millis")), Schedule.jittered)
  )
)

/**
 * `attempt`, and on a conflict, again with `conflictBackoff` while `keepTrying()`. The schedule's driver is made
 * only after a first conflict: most writes never meet one.
 */
const retryingConflicts = <A, E extends { readonly _tag: string }>(
  attempt: Effect.Effect<A, E | Conflict>,
  keepTrying: () => boolean
): Effect.Effect<A, E | Conflict> =>
  Effect.catchIf(
    attempt,
    (error): error is Conflict => isConflict(error as WriteError | Conflict) && keepTrying(),
    () => Effect.retry(attempt, { schedule: conflictBackoff, while: (e) => isConflict(e as WriteError | Conflict) && keepTrying() })
  )

const applyF = (f: (current: string) => string, value: string, checkValue: Operations["checkValue"]) => {
  try {
    const next = f(value)
    const invalid = checkValue(next)
    return invalid === undefined ? Exit.succeed(next) : Exit.fail(invalid)
  } catch (defect) {
    return Exit.die(defect)
  }
}

/**
 * The queues of one store. `submit` adds a job; the job's `result` completes when it is written (or fails).
 * Draining fibers are forked into `scope`, so they stop with the store.
 */
export const make = (operations: Operations, scope: Scope.Scope) => {
  const queues = new Map<string, Array<Job>>()

  const settle = <A>(job: JobBase<A>, exit: Exit.Exit<A, WriteError>) => job.result.settle(exit)
  /** Fails every job of `jobs` with `exit` (a failure, so it fits any job's outcome). */
  const failAllWith = (jobs: ReadonlyArray<Job>, exit: Exit.Exit<never, WriteError>) =>
    Effect.sync(() => {
      for (const job of jobs) (job.result as Outcome<unknown>).settle(exit)
    })
  const failAll = (jobs: ReadonlyArray<Job>, error: WriteError) => failAllWith(jobs, Exit.fail(error))
  const waiting = (jobs: ReadonlyArray<Job>) => () => jobs.some((job) => !job.abandoned)

  /** One compare-and-set of all `jobs` applied in order; retried on conflict. Returns what was written. */
  const writeAll = (id: Uint8Array, jobs: ReadonlyArray<ModifyJob>, known: Current | undefined) => {
    let start = known
    const attempt = Effect.gen(function*() {
      for (const job of jobs) job.attempts++
      const now = yield* operations.now
      const row = start ?? (yield* operations.read(id))
      start = undefined
      let value = row.value
      let expiry: number | undefined
      let owner: StoredOwner | undefined
      const exits = jobs.map((job) => {
        const exit = applyF(job.f, value, operations.checkValue)
        if (Exit.isSuccess(exit)) {
          value = exit.value
          if (job.expiry !== undefined) expiry = job.expiry
          if (job.owner !== undefined) owner = job.owner
        }
        return exit
      })
      let current: Current = row
      if (exits.some(Exit.isSuccess)) {
        const version = yield* operations.write(
          id,
          row.version,
          value,
          expiry === undefined ? undefined : now + expiry,
          now,
          owner
        )
        if (version === undefined) {
          yield* Observability.count(Observability.writeConflicts)
          return yield* Effect.fail<Conflict>(conflict)
        }
        current = { value, version }
        yield* Observability.count(Observability.writesMerged, exits.filter(Exit.isSuccess).length - 1)
      }
      jobs.forEach((job, i) => settle(job, exits[i]!))
      return current
    })
    return retryingConflicts(attempt, waiting(jobs))
  }

  /** The atomic rotation of `job`, retried on conflict: `true` once rotated, `false` if `f` gave a rejected value. */
  const rotateOnce = (id: Uint8Array, job: RotateJob, known: Current | undefined) => {
    let start = known
    const attempt = Effect.gen(function*() {
      job.attempts++
      const now = yield* operations.now
      const row = start ?? (yield* operations.read(id))
      start = undefined
      const exit = applyF(job.f, row.value, operations.checkValue)
      if (Exit.isFailure(exit)) {
        settle(job, exit as Exit.Exit<never, InvalidValue>)
        return false
      }
      const key = SessionKey.generate()
      const rotated = yield* operations.rotate(
        id,
        row.version,
        SessionKey.hash(key),
        exit.value,
        now + job.expiry,
        now + job.staleTimeout,
        now,
        job.owner
      )
      if (!rotated) {
        yield* Observability.count(Observability.writeConflicts)
        return yield* Effect.fail<Conflict>(conflict)
      }
      settle(job, Exit.succeed({ key, value: exit.value }))
      return true
    })
    return retryingConflicts(attempt, () => !job.abandoned)
  }

  /**
   * Runs the writes queued before the first rotation as one batch, then that rotation. Jobs after the rotation go
   * back to the front of the queue: the next batch reads the rotated row and fails them with `Rotated`.
   */
  const runBatch = (id: Uint8Array, queue: Array<Job>, jobs: Array<Job>, known: Current | undefined) =>
    Effect.gen(function*() {
      const split = jobs.findIndex((job) => job._tag === "Rotate")
      const modifies = (split === -1 ? jobs : jobs.slice(0, split)) as Array<ModifyJob>
      const rotation = split === -1 ? undefined : jobs[split] as RotateJob
      if (split !== -1) queue.unshift(...jobs.slice(split + 1))
      let current = known
      if (modifies.length > 0) {
        const written = yield* Effect.either(writeAll(id, modifies, current))
        if (written._tag === "Left") {
          yield* failAll(jobs.slice(0, split === -1 ? jobs.length : split + 1), asWriteError(written.left))
          return undefined
        }
        current = written.right
      }
      if (rotation === undefined) return current
      const rotated = yield* Effect.either(rotateOnce(id, rotation, current))
      if (rotated._tag === "Left") {
        yield* failAll([rotation], asWriteError(rotated.left))
        return undefined
      }
      // After a rotation the row is read-only; after a rejected value it is as it was.
      return rotated.right ? undefined : current
    })

  /**
   * Takes every waiting job; when there is none, retires the queue in the same synchronous step, so that a job is
   * either taken here or lands in a new queue with a new drainer, never in a retired one.
   */
  const take = (key: string, queue: Array<Job>) =>
    Effect.sync(() => {
      const jobs = queue.splice(0).filter((job) => !job.abandoned)
      if (jobs.length === 0 && queues.get(key) === queue) queues.delete(key)
      return jobs
    })

  /**
   * One batch, whatever happens to it: a defect fails its callers with that cause at once (and is reported) and the
   * queue carries on; an interruption (the store closing) fails them as stopped.
   */
  const guardedBatch = (id: Uint8Array, queue: Array<Job>, jobs: Array<Job>, known: Current | undefined) =>
    runBatch(id, queue, jobs, known).pipe(
      Effect.catchAllCause((cause) =>
        operations.onDefect(cause).pipe(
          Effect.zipRight(failAllWith(jobs, Exit.failCause(cause as Cause.Cause<WriteError>))),
          Effect.as(undefined)
        )
      ),
      Effect.onInterrupt(() => failAll(jobs, stopped()))
    )

  const drain = (key: string, id: Uint8Array, queue: Array<Job>, from: Current | undefined) =>
    Effect.gen(function*() {
      let known = from
      while (true) {
        const jobs = yield* take(key, queue)
        if (jobs.length === 0) return
        known = yield* guardedBatch(id, queue, jobs, known)
      }
    }).pipe(
      // Interrupted with its store (or by a defect): retire the queue and fail what still waits in it.
      Effect.onExit((exit) =>
        Exit.isSuccess(exit) ? Effect.void : Effect.suspend(() => {
          if (queues.get(key) === queue) queues.delete(key)
          return failAll(queue.splice(0), stopped())
        })
      )
    )

  return {
    /** Runs `job` on its own in the calling fiber (inside a caller's transaction, say); settles its result. */
    runAlone: (id: Uint8Array, job: Job, from: Current | undefined): Effect.Effect<void> =>
      Effect.asVoid(runBatch(id, [], [job], from)),
    /** Queues `job` for the session `id`; `from` (a recent read) saves the first read when the queue was idle. */
    submit: (id: Uint8Array, job: Job, from: Current | undefined): Effect.Effect<void> =>
      Effect.suspend(() => {
        const key = Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("base64")
        const queue = queues.get(key)
        if (queue !== undefined) {
          queue.push(job)
          return Effect.void
        }
        const fresh: Array<Job> = [job]
        queues.set(key, fresh)
        // Interruptible whatever the submitter's region, so that deadlines act and the store's scope can stop it.
        return Effect.asVoid(Effect.forkIn(Effect.interruptible(drain(key, id, fresh, from)), scope))
      })
  }
}

/** A queue stopped with its store, or a conflict that outlived every caller: never seen by a caller still waiting. */
const stopped = () =>
  new SessionStoreError({ operation: "modify", cause: new Error("the write queue stopped before this write ran") })

const asWriteError = (error: WriteError | Conflict): WriteError => error._tag === "Conflict" ? stopped() : error
