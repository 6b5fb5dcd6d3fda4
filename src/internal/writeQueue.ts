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
import type { Expired, InvalidValue, NotFound, Rotated } from "../SessionError.js"
import { SessionStoreError } from "../SessionError.js"
import * as SessionKey from "../SessionKey.js"
import { encode } from "./bytes.js"
import * as Deadline from "./deadline.js"
import * as Observability from "./observability.js"
import type { Backend, Rotation, StoredOwner } from "./storeModel.js"

/** A session's value, the row version it was read at, and its family. */
export interface Current {
  readonly value: string
  readonly version: string
  readonly family: Uint8Array
}

/** What a queued write can fail with. */
export type WriteError = NotFound | Expired | Rotated | InvalidValue | SessionStoreError

/**
 * Where a job's outcome lands: settled once (the write, a failure, or the store stopping), heard by at most one
 * listener (its caller, waiting within its deadline).
 */
export class Outcome<A> {
  private exit: Exit.Exit<A, WriteError> | undefined
  private listener: ((exit: Exit.Exit<A, WriteError>) => void) | undefined

  /** Settles the outcome, unless it was settled already. */
  settle(exit: Exit.Exit<A, WriteError>): void {
    if (this.exit !== undefined) return
    this.exit = exit
    this.listener?.(exit)
  }

  /** Calls `listener` with the outcome, at once if it is settled. */
  listen(listener: (exit: Exit.Exit<A, WriteError>) => void): void {
    if (this.exit !== undefined) listener(this.exit)
    else this.listener = listener
  }
}

interface JobBase<A> {
  readonly f: (current: string) => string
  readonly result: Outcome<A>
  readonly owner: StoredOwner | undefined
  /** Set when the caller gave up (deadline): the job is dropped unless its batch already started. */
  abandoned: boolean
  /** Statements tried for this job so far (a span attribute). */
  attempts: number
}

/** `modify`: replace the value with `f(value)`; `expiresAt` (epoch ms) and `owner` replace theirs when given. */
export interface ModifyJob extends JobBase<string> {
  readonly _tag: "Modify"
  readonly expiresAt: number | undefined
}

/**
 * `rotate`: a new key holding `f(value)` until `expiresAt`, owned by `owner` (or by the old row's owner); the old
 * key keeps its value for `staleTimeout` ms after the rotation.
 */
export interface RotateJob extends JobBase<Rotation> {
  readonly _tag: "Rotate"
  readonly expiresAt: number
  readonly staleTimeout: number
}

export type Job = ModifyJob | RotateJob

/** The store operations the queue runs (each already bounded by a deadline, failures mapped). */
export interface Operations {
  readonly now: Effect.Effect<number>
  /** The live, unrotated session, or why there is none. */
  readonly read: (id: Uint8Array) => Effect.Effect<Current, NotFound | Expired | Rotated | SessionStoreError>
  readonly compareAndSet: Backend<SessionStoreError>["compareAndSet"]
  readonly rotate: Backend<SessionStoreError>["rotate"]
  readonly rotationKey: (family: Uint8Array) => SessionKey.SessionKey
  readonly checkValue: (value: string) => InvalidValue | undefined
  /** Reports a defect in a batch (its callers fail with it at once). */
  readonly onDefect: (cause: Cause.Cause<unknown>) => Effect.Effect<void>
}

const conflict = { _tag: "Conflict" } as const
type Conflict = typeof conflict
/** By tag: the error that reaches a retry predicate need not be the instance that was failed with. */
const isConflict = (error: { readonly _tag: string }): error is Conflict => error._tag === "Conflict"

/**
 * Retries after a lost compare-and-set: twice at once (a single competitor has just written), then with jittered
 * exponential backoff from 2 ms, never more than 50 ms apart, for as long as a caller still waits.
 */
const conflictBackoff = Schedule.recurs(1).pipe( // after the first retry, which `retryingConflicts` makes at once
  Schedule.andThen(
    Schedule.exponential("2 millis").pipe(Schedule.union(Schedule.spaced("50 millis")), Schedule.jittered)
  )
)

/** `attempt`, and on a conflict, again with `conflictBackoff` while `keepTrying()` (the schedule made only then). */
const retryingConflicts = <A, E extends { readonly _tag: string }>(
  attempt: Effect.Effect<A, E | Conflict>,
  keepTrying: () => boolean
): Effect.Effect<A, E | Conflict> =>
  Effect.catchIf(
    attempt,
    (error): error is Conflict => isConflict(error) && keepTrying(),
    () => Effect.retry(attempt, { schedule: conflictBackoff, while: (e) => isConflict(e) && keepTrying() })
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

/** Fails every job of `jobs` with `exit` (a failure, so it fits any job's outcome). */
const failAll = (jobs: ReadonlyArray<Job>, exit: Exit.Exit<never, WriteError>) =>
  Effect.sync(() => {
    for (const job of jobs) (job.result as Outcome<unknown>).settle(exit)
  })

/** A queue stopped with its store, or a conflict that outlived every caller: never seen by a caller still waiting. */
const stopped = () =>
  new SessionStoreError({ operation: "modify", cause: new Error("the write queue stopped before this write ran") })

const asWriteError = (error: WriteError | Conflict): WriteError => isConflict(error) ? stopped() : error

/** The current row: `known` the first time (a recent read), read afresh on every retry. */
const startingFrom = (operations: Operations, id: Uint8Array, known: Current | undefined) => {
  let start = known
  return Effect.suspend(() => {
    const row = start
    start = undefined
    return row === undefined ? operations.read(id) : Effect.succeed(row)
  })
}

/** One compare-and-set of all `jobs` applied in order; retried on conflict. Returns what was written. */
const writeAll = (operations: Operations, id: Uint8Array, jobs: ReadonlyArray<ModifyJob>, known: Current | undefined) => {
  const current = startingFrom(operations, id, known)
  const attempt = Effect.gen(function*() {
    for (const job of jobs) job.attempts++
    const now = yield* operations.now
    const row = yield* current
    let value = row.value
    let expiresAt: number | undefined
    let owner: StoredOwner | undefined
    const exits = jobs.map((job) => {
      const exit = applyF(job.f, value, operations.checkValue)
      if (Exit.isSuccess(exit)) {
        value = exit.value
        expiresAt = job.expiresAt ?? expiresAt
        owner = job.owner ?? owner
      }
      return exit
    })
    const written = exits.filter(Exit.isSuccess).length
    let next: Current = row
    if (written > 0) {
      const version = yield* operations.compareAndSet({ id, version: row.version, value, expiresAt, now, owner })
      if (version === undefined) {
        yield* Observability.count(Observability.writeConflicts)
        return yield* Effect.fail(conflict)
      }
      next = { value, version, family: row.family }
      yield* Observability.count(Observability.writesMerged, written - 1)
    }
    jobs.forEach((job, i) => job.result.settle(exits[i]!))
    return next
  })
  return retryingConflicts(attempt, () => jobs.some((job) => !job.abandoned))
}

/** The atomic rotation of `job`, retried on conflict: `true` once rotated, `false` if `f` gave a rejected value. */
const rotateOnce = (operations: Operations, id: Uint8Array, job: RotateJob, known: Current | undefined) => {
  const current = startingFrom(operations, id, known)
  const attempt = Effect.gen(function*() {
    job.attempts++
    const now = yield* operations.now
    const row = yield* current
    const exit = applyF(job.f, row.value, operations.checkValue)
    if (Exit.isFailure(exit)) {
      job.result.settle(exit as Exit.Exit<never, InvalidValue>)
      return false
    }
    const key = operations.rotationKey(row.family)
    const rotated = yield* operations.rotate({
      id,
      version: row.version,
      newId: SessionKey.hash(key),
      value: exit.value,
      expiresAt: job.expiresAt,
      staleExpiresAt: now + job.staleTimeout,
      now,
      owner: job.owner
    })
    if (!rotated) {
      yield* Observability.count(Observability.writeConflicts)
      return yield* Effect.fail(conflict)
    }
    job.result.settle(Exit.succeed({ key, value: exit.value }))
    return true
  })
  return retryingConflicts(attempt, () => !job.abandoned)
}

/**
 * Runs the writes queued before the first rotation as one batch, then that rotation. Jobs after the rotation go
 * back to the front of the queue: the next batch reads the rotated row and fails them with `Rotated`. Returns the
 * row as it is now, if it is still writable.
 */
const runBatch = (operations: Operations, id: Uint8Array, queue: Array<Job>, jobs: Array<Job>, known: Current | undefined) =>
  Effect.gen(function*() {
    const split = jobs.findIndex((job) => job._tag === "Rotate")
    const modifies = (split === -1 ? jobs : jobs.slice(0, split)) as Array<ModifyJob>
    const rotation = split === -1 ? undefined : jobs[split] as RotateJob
    if (split !== -1) queue.unshift(...jobs.slice(split + 1))
    let current = known
    if (modifies.length > 0) {
      const written = yield* Effect.either(writeAll(operations, id, modifies, current))
      if (written._tag === "Left") {
        yield* failAll(jobs.slice(0, split === -1 ? jobs.length : split + 1), Exit.fail(asWriteError(written.left)))
        return undefined
      }
      current = written.right
    }
    if (rotation === undefined) return current
    const rotated = yield* Effect.either(rotateOnce(operations, id, rotation, current))
    if (rotated._tag === "Left") {
      yield* failAll([rotation], Exit.fail(asWriteError(rotated.left)))
      return undefined
    }
    // After a rotation the row is read-only; after a rejected value it is as it was.
    return rotated.right ? undefined : current
  })

/** A job's caller: waits for its outcome within `millis`; a caller that gives up (or is interrupted) withdraws it. */
export const awaitOutcome = <A>(job: JobBase<A>, millis: number, onTimeout: () => SessionStoreError) =>
  Deadline.callback<A, WriteError>(millis, onTimeout, (settle) => {
    job.result.listen((exit) => settle(exit))
    return () => void (job.abandoned = true)
  })

/**
 * The queues of one store. `submit` adds a job; the job's `result` settles when it is written (or fails). Draining
 * fibers are forked into `scope`, so they stop with the store.
 */
export const make = (operations: Operations, scope: Scope.Scope) => {
  const queues = new Map<string, Array<Job>>()

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
    runBatch(operations, id, queue, jobs, known).pipe(
      Effect.catchAllCause((cause) =>
        operations.onDefect(cause).pipe(
          Effect.zipRight(failAll(jobs, Exit.failCause(cause as Cause.Cause<WriteError>))),
          Effect.as(undefined)
        )
      ),
      Effect.onInterrupt(() => failAll(jobs, Exit.fail(stopped())))
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
          return failAll(queue.splice(0), Exit.fail(stopped()))
        })
      )
    )

  return {
    /** Runs `job` on its own in the calling fiber (inside a caller's transaction, say); settles its result. */
    runAlone: (id: Uint8Array, job: Job, from: Current | undefined): Effect.Effect<void> =>
      Effect.asVoid(runBatch(operations, id, [], [job], from)),
    /** Queues `job` for the session `id`; `from` (a recent read) saves the first read when the queue was idle. */
    submit: (id: Uint8Array, job: Job, from: Current | undefined): Effect.Effect<void> =>
      Effect.suspend(() => {
        const key = encode(id, "base64")
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

/** The write queues of a store. */
export type WriteQueue = ReturnType<typeof make>
