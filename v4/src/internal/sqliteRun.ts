/**
 * How the SQLite store runs a statement (or a transaction of a few) without ever waiting inside the engine.
 *
 * better-sqlite3 is synchronous: with a busy timeout, a statement that meets another connection's lock sleeps in
 * the engine, and the whole event loop sleeps with it (a 2 s lock froze a loop for 1.8 s, and no deadline could
 * fire). So the connection has no busy timeout: a locked attempt fails at once with `SQLITE_BUSY`, having changed
 * nothing, and is tried again on a timer (next turn of the loop, then backing off from 1 ms to 25 ms, jittered)
 * until it succeeds or the deadline passes. The loop stays free for every other request meanwhile, and the
 * deadline is a real timer, whatever clock the caller's fiber uses. An attempt that gets through runs to the end in
 * one synchronous step, so each primitive is atomic in this process too.
 */
import { Cause, Effect } from "effect"
import * as Deadline from "./deadline.js"

/** Whether an engine error is another connection's lock: the attempt changed nothing and may be tried again. */
export const isBusy = (error: unknown): boolean => {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === "string" && code.startsWith("SQLITE_BUSY")
}

/** Whether an error is a deadline that passed while the database stayed locked. */
export const isTimeout = (error: unknown): boolean => Cause.isTimeoutError(error)

/** The longest pause between two attempts, in milliseconds. */
const maxPause = 25

/** The pause before retry `n` (from 0): the next turn of the loop, then 1, 2, 4, … 25 ms, each ±50%. */
const pause = (n: number) => n === 0 ? 0 : Math.min(maxPause, 2 ** (n - 1)) * (0.5 + Math.random())

/** Retries `attempt` on timers until it gets through or `millis` pass. */
const retrying = <A>(attempt: () => A, millis: number): Effect.Effect<A, unknown> =>
  Deadline.callback<A, unknown>(
    millis,
    () => new Cause.TimeoutError(`database locked for ${millis} ms`),
    (settle) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const schedule = (n: number) => {
        timer = setTimeout(() => {
          try {
            settle(Effect.succeed(attempt()))
          } catch (error) {
            if (isBusy(error)) schedule(n + 1)
            else settle(Effect.fail(error))
          }
        }, pause(n))
      }
      schedule(0)
      return () => clearTimeout(timer)
    }
  )

/** A runner of synchronous operations. */
export type Run = <A>(attempt: () => A) => Effect.Effect<A, unknown>

/**
 * Runs `attempt` at once; only if the database is locked, again on timers, within `timeout` milliseconds from the
 * call (then it fails with a `TimeoutError`). Any other error fails at once.
 */
export const make = (timeout: number): Run => (attempt) =>
  Effect.suspend(() => {
    const started = performance.now()
    try {
      return Effect.succeed(attempt())
    } catch (error) {
      if (!isBusy(error)) return Effect.fail(error)
    }
    return retrying(attempt, Math.max(1, timeout - (performance.now() - started)))
  })
