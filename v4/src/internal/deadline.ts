/**
 * Deadlines: every bounded call in the library goes through one of these three forms.
 *
 * - {@link within}: an Effect, interrupted when its deadline passes;
 * - {@link callback}: a callback-style operation (a raw `pg` query) that is aborted when its deadline passes or its
 *   caller is interrupted; one timer, no fiber;
 * - {@link detached}: an Effect that must never be interrupted (an `@effect/sql` query, whose interruption sends
 *   `pg_cancel_backend` and can cancel someone else's statement): the caller stops waiting, the query finishes.
 */
import { Cause, Effect, Fiber } from "effect"
import { SessionStoreError } from "../SessionError.js"

/** The error of an operation that did not answer within `millis`. */
export const timedOut = (operation: string, millis: number): SessionStoreError =>
  new SessionStoreError({ operation, cause: new Cause.TimeoutError(`no answer within ${millis} ms`) })

/**
 * `effect`, failing with `onTimeout()` once `millis` have passed (and then interrupted). It is made
 * interruptible: callers often run in uninterruptible regions (an HTTP server runs its middleware and pre-response
 * handlers so), where a timeout would otherwise wait for the very call it bounds.
 */
export const within = <A, E, E2>(
  effect: Effect.Effect<A, E>,
  millis: number,
  onTimeout: () => E2
): Effect.Effect<A, E | E2> =>
  Effect.timeoutOrElse(Effect.interruptible(effect), { duration: millis, orElse: () => Effect.fail(onTimeout()) })

/** How a bounded callback operation ended early. */
export type Abort = "deadline" | "interrupted"

/**
 * A callback-style operation bounded by `millis`. `start` begins it with a `settle` function (later calls are
 * ignored) and returns what to do when it ends early: once, on the deadline (the caller then fails with
 * `onTimeout()`) or on the caller's interruption.
 */
export const callback = <A, E>(
  millis: number,
  onTimeout: () => E,
  start: (settle: (result: Effect.Effect<A, E>) => void) => (reason: Abort) => void
): Effect.Effect<A, E> =>
  Effect.callback<A, E>((resume) => {
    let settled = false
    const finish = () => {
      if (settled) return false
      settled = true
      clearTimeout(timer)
      return true
    }
    const timer = setTimeout(() => {
      if (!finish()) return
      abort("deadline")
      resume(Effect.fail(onTimeout()))
    }, millis)
    const abort = start((result) => {
      if (finish()) resume(result)
    })
    return Effect.sync(() => {
      if (finish()) abort("interrupted")
    })
  })

/**
 * `effect` run to completion in a fiber of its own, never interrupted; the caller waits for it at most `millis`
 * (then fails with `onTimeout()`), and an interrupted caller simply stops waiting.
 */
export const detached = <A, E, E2>(
  effect: Effect.Effect<A, E>,
  millis: number,
  onTimeout: () => E2
): Effect.Effect<A, E | E2> =>
  Effect.flatMap(
    Effect.forkDetach(Effect.uninterruptible(effect)),
    (fiber) =>
      Effect.timeoutOrElse(Effect.interruptible(Fiber.join(fiber)), {
        duration: millis,
        orElse: () => Effect.fail(onTimeout())
      })
  )
