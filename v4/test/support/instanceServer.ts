/**
 * One app instance of the many-instances fault test, as a process of its own
 * (`node --import tsx test/support/instanceServer.ts`): the test app (testApp.ts) on `PgSessionStore.layerPool`.
 * Settings from the environment: `DATABASE_URL`, `TABLE`, `PORT`, `CLEANUP_INTERVAL` and `STARTUP_TIMEOUT` (ms).
 *
 * It writes JSON lines on stdout: `{ event: "listening" }` once it serves; `{ event: "cleanups", runs }` (its cleanup
 * runs so far) every 100 ms; on SIGTERM it stops taking connections, answers the requests it has taken (as a
 * graceful shutdown does: the HTTP server closed before the Effect scopes), closes its pool and writes
 * `{ event: "stopped", runs }`. A start-up that fails writes `{ event: "failed", message }` and exits 1.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Cause, Effect, Exit, Fiber, Layer, Metric, Redacted, Schedule } from "effect"
import { createServer } from "node:http"
import * as Observability from "../../src/internal/observability.js"
import { PgSessionStore } from "../../src/index.js"
import { Barrier, serveApp } from "./testApp.js"

const send = (message: object) => process.stdout.write(JSON.stringify(message) + "\n")
const env = (name: string) => {
  const value = process.env[name]
  if (value === undefined || value === "") throw new Error(`${name} is not set`)
  return value
}

const http = createServer()

const runs = Effect.map(Metric.value(Observability.cleanupRuns), (state) => state.count)

const store = PgSessionStore.layerPool({
  url: Redacted.make(env("DATABASE_URL")),
  tableName: env("TABLE"),
  maxConnections: 4,
  timeout: 1_000,
  cleanupInterval: Number(env("CLEANUP_INTERVAL")),
  startupTimeout: Number(env("STARTUP_TIMEOUT"))
})

// The HTTP server in a scope inside the store's: on SIGTERM it closes first (answering what it took), then the pool.
const program = Effect.scoped(Effect.gen(function*() {
  const context = yield* Layer.build(store)
  yield* Effect.scoped(Effect.gen(function*() {
    const server = yield* Layer.build(Layer.merge(
      NodeHttpServer.layer(() => http, { port: Number(env("PORT")), host: "127.0.0.1" }),
      Barrier.Default
    ))
    yield* serveApp().pipe(Effect.provide(context), Effect.provide(server))
    send({ event: "listening" })
    yield* Effect.flatMap(runs, (count) => Effect.sync(() => send({ event: "cleanups", runs: count }))).pipe(
      Effect.repeat(Schedule.spaced("100 millis")),
      Effect.forkScoped
    )
    yield* Effect.never
  }))
}))

const fiber = Effect.runFork(program)
// A graceful stop: no new connections, the requests taken answered (for at most 5 s), then the scopes close.
let stopping = false
process.once("SIGTERM", () => {
  stopping = true
  const drained = new Promise<void>((resolve) => {
    http.close(() => resolve())
    setTimeout(() => {
      http.closeAllConnections()
      resolve()
    }, 5_000).unref()
  })
  Effect.runFork(Effect.gen(function*() {
    yield* Effect.promise(() => drained)
    yield* Fiber.interrupt(fiber)
    send({ event: "stopped", runs: yield* runs })
    process.exit(0)
  }))
})
fiber.addObserver((exit) => {
  if (Exit.isFailure(exit) && !stopping) {
    send({ event: "failed", message: Cause.pretty(exit.cause).split("\n")[0] })
    process.exit(1)
  }
})
