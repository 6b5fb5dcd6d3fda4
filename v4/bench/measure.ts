/** Closed-loop load: N workers run an operation back to back for a fixed time; latencies per operation. */
import { Effect } from "effect"

export interface Stats {
  /** Latencies of every measured operation (ms); dropped from the JSON results. */
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

/** Runs `op` from `concurrency` async workers for `seconds` (after a warm-up of a quarter of that). */
export const measurePromise = async (
  concurrency: number,
  seconds: number,
  op: (i: number) => Promise<unknown>
): Promise<Stats> => {
  const phase = async (ms: number, record: boolean) => {
    const latencies: Array<number> = []
    let errors = 0
    let i = 0
    const start = performance.now()
    const deadline = start + ms
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now()
        try {
          await op(i++)
          if (record) latencies.push(performance.now() - t0)
        } catch {
          errors++
        }
      }
    }))
    return summarize(latencies, performance.now() - start, errors)
  }
  await phase(seconds * 250, false)
  return phase(seconds * 1000, true)
}

/** The same for an Effect operation, run by fibers (as an Effect app would). */
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
      // No function made per operation: run through tsx (esbuild's keepNames), every named closure costs a
      // `defineProperty` of its name, which the promise loop above never pays.
      const worker = Effect.suspend(() => {
        let t0 = 0
        const failed = Effect.sync(() => void errors++)
        const succeeded = Effect.sync(() => void (record && latencies.push(performance.now() - t0)))
        const onFailure = () => failed
        const onSuccess = () => succeeded
        return Effect.whileLoop({
          while: () => performance.now() < deadline,
          body: () => {
            t0 = performance.now()
            return Effect.matchEffect(op(i++), { onFailure, onSuccess })
          },
          step: () => {}
        })
      })
      return Effect.forEach(Array.from({ length: concurrency }), () => worker, {
        concurrency: "unbounded",
        discard: true
      }).pipe(Effect.map(() => summarize(latencies, performance.now() - start, errors)))
    })
  return Effect.andThen(phase(seconds * 250, false), phase(seconds * 1000, true))
}

/**
 * Runs each competitor in `rounds` interleaved rounds (A B C A B C ...) so they share the machine's noise, and
 * combines them: ops/s is the median of the rounds, latencies are pooled.
 */
export const interleaved = async <K extends string>(
  rounds: number,
  competitors: ReadonlyArray<readonly [K, () => Promise<Stats>]>
): Promise<Map<K, Stats>> => {
  const runs = new Map<K, Array<Stats>>(competitors.map(([name]) => [name, []]))
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? competitors : [...competitors].reverse()
    for (const [name, run] of order) runs.get(name)!.push(await run())
  }
  return new Map([...runs].map(([name, stats]) => {
    const rates = stats.map((s) => s.opsPerSec).sort((a, b) => a - b)
    const pooled = summarize(stats.flatMap((s) => s.latencies ?? []), 1000, stats.reduce((n, s) => n + s.errors, 0))
    return [name, { ...pooled, latencies: [], opsPerSec: rates[Math.floor(rates.length / 2)]! }]
  }))
}
