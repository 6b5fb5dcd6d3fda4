/**
 * Closed-loop load on Effect 4, the same loop as the Effect 3 line's `bench/lib/measure.ts` (`measureEffect`):
 * N fibers run an operation back to back for a fixed time after a warm-up of a quarter of it; latencies per operation.
 * It lives under v4/ so that `effect` resolves from v4/node_modules (Effect 4).
 */
import { Effect } from "effect"

export interface Stats {
  readonly latencies?: Array<number>
  readonly ops: number
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly errors: number
}

const percentile = (sorted: Float64Array, p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

export const summarize = (latencies: Array<number>, elapsedMs: number, errors: number): Stats => {
  const sorted = Float64Array.from(latencies).sort()
  return {
    latencies,
    ops: latencies.length,
    opsPerSec: latencies.length / (elapsedMs / 1000),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    errors
  }
}

/** The same as the Effect 3 line's `measureEffect`: the operation run by fibers (as an Effect app would). */
export const measureEffect = <E, R>(
  concurrency: number,
  seconds: number,
  op: (i: number) => Effect.Effect<unknown, E, R>
): Effect.Effect<Stats, never, R> => {
  const phase = (ms: number, record: boolean) =>
    Effect.suspend(() => {
      const latencies: Array<number> = []
      let errors = 0
      let i = 0
      const start = performance.now()
      const deadline = start + ms
      const worker = Effect.whileLoop({
        while: () => performance.now() < deadline,
        body: () => {
          const t0 = performance.now()
          return op(i++).pipe(
            Effect.matchEffect({
              onFailure: () => Effect.sync(() => void errors++),
              onSuccess: () => Effect.sync(() => void (record && latencies.push(performance.now() - t0)))
            })
          )
        },
        step: () => {}
      })
      return Effect.forEach(Array.from({ length: concurrency }), () => worker, {
        concurrency: "unbounded",
        discard: true
      }).pipe(Effect.map(() => summarize(latencies, performance.now() - start, errors)))
    })
  return Effect.andThen(phase(seconds * 250, false), phase(seconds * 1000, true))
}
