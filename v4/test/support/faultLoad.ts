/**
 * The harness of the Redis fault tests: the test app served on a real port on a Redis store, load with timed fault
 * steps, each client's counter read back, and the invariants every fault test checks (with a `FAULT …` line).
 */
import { HttpServer } from "effect/http"
import { NodeHttpServer } from "@effect/platform-node"
import { expect } from "@effect/vitest"
import { Effect, Layer, Logger } from "effect"
import { createServer } from "node:http"
import type * as RedisSessionStore from "../../src/RedisSessionStore.js"
import * as Load from "./load.js"
import { storeLayer } from "./redis.js"
import { Barrier, serveApp } from "./testApp.js"

/** The HTTP server and the app's barrier, for `serveRedis`. */
export const withHttpServer = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.provide(Layer.merge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }), Barrier.Default)),
    Effect.scoped
  )

/** Serves the test app on a Redis store (no cleanup fiber; its keys deleted afterwards); its base URL and logs. */
export const serveRedis = (options: RedisSessionStore.Options) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const context = yield* Layer.build(storeLayer(options)({ cleanupInterval: 0, ...(options.timeout === undefined ? {} : { timeout: options.timeout }) }))
    yield* serveApp().pipe(
      Effect.provide(context),
      Effect.provide(Logger.layer([Logger.make(({ message }) => lines.push(`${message}`))]))
    )
    const address = (yield* HttpServer.HttpServer).address
    const port = address._tag !== "UnixPathAddress" ? address.port : 0
    return { base: `http://127.0.0.1:${port}`, lines }
  })

/** Runs increments from `clients` loops; each step runs at its time (ms from the start). */
export const load = (
  base: string,
  options: { readonly clients: number; readonly maxMillis: number },
  steps: ReadonlyArray<readonly [number, () => void]>,
  stop: (elapsed: number, samples: ReadonlyArray<Load.Sample>) => boolean = () => false
) =>
  Effect.promise(() => {
    const timers = steps.map(([at, step]) => setTimeout(step, at))
    return Load.run({ base, path: "/", clients: options.clients, timeoutMs: 15_000, maxMillis: options.maxMillis, stop })
      .finally(() => timers.forEach(clearTimeout))
  })

/** Each client's visit counter, read once the store is healthy again (-1: not readable). */
export const counters = (base: string, cookies: ReadonlyArray<string | undefined>) =>
  Effect.promise(() =>
    Promise.all(cookies.map(async (cookie) => {
      if (cookie === undefined) return 0
      for (let attempt = 0; attempt < 20; attempt++) {
        const reply = await Load.send(`${base}/peek`, { cookie, timeoutMs: 10_000 })
        if (reply.status === 200) return JSON.parse(reply.body).data.visits as number
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
      return -1
    }))
  )

/** When the first 200 came after `since` (ms after it). */
export const recovery = (samples: ReadonlyArray<Load.Sample>, since: number) => {
  const first = samples.filter((s) => s.at >= since && s.status === 200).sort((a, b) => a.at - b.at)[0]
  return first === undefined ? undefined : first.at - since
}

/** Increments answered 200 that the clients' counters do not hold. */
export const lostWrites = (result: Load.LoadResult, counts: ReadonlyArray<number>) =>
  result.acknowledged.reduce((sum, acked, i) => sum + Math.max(0, acked - counts[i]!), 0)

/** Prints the summary line of a fault test. */
export const report = (name: string, result: Load.LoadResult, extra: Record<string, unknown>) => {
  const latencies = result.samples.map((s) => s.ms).sort((a, b) => a - b)
  console.log(`FAULT ${name}: ${JSON.stringify({
    requests: result.samples.length,
    statuses: Load.statusCounts(result.samples),
    maxMs: latencies.at(-1),
    p99Ms: latencies[Math.floor(latencies.length * 0.99)],
    ...extra
  })}`)
}

/** The invariants: every request answered within `bound`, and no acknowledged write lost. */
export const check = (
  name: string,
  result: Load.LoadResult,
  counts: ReadonlyArray<number>,
  bound: number,
  extra: Record<string, unknown> = {}
) => {
  const lost = lostWrites(result, counts)
  report(name, result, { acknowledgedWritesLost: lost, ...extra })
  expect(result.samples.filter((s) => s.status === 0 || s.status === -1)).toEqual([])
  expect(Math.max(...result.samples.map((s) => s.ms))).toBeLessThanOrEqual(bound)
  expect(lost).toBe(0)
  for (const [i, count] of counts.entries()) expect(count, `client ${i}`).toBeGreaterThanOrEqual(result.acknowledged[i]!)
}
