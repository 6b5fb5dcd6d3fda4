/**
 * The test app served on a real port over a given store, for fault tests: requests come over TCP, as a browser's
 * would, and the server's log lines are kept (not printed) so a test can count them.
 */
import { HttpServer } from "effect/http"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer, Logger } from "effect"
import { createServer } from "node:http"
import type { SessionStore } from "../../src/index.js"
import { Barrier, serveApp } from "./testApp.js"

/** Serves the test app on a real port with `store`; returns its base URL and the log lines written meanwhile. */
export const serve = <E>(store: Layer.Layer<SessionStore.SessionStore, E>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    // Built into the test's scope: provided to `serveEffect` alone, it would close once the handler is installed.
    const context = yield* Layer.build(store)
    yield* serveApp().pipe(
      Effect.provide(context),
      Effect.provide(Logger.layer([Logger.make(({ message }) => lines.push(`${message}`))]))
    )
    const address = (yield* HttpServer.HttpServer).address
    const port = address._tag !== "UnixPathAddress" ? address.port : 0
    return { base: `http://127.0.0.1:${port}`, lines }
  })

/** The HTTP server `serve` needs: a free port on the loopback. */
export const httpServer = Layer.merge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }), Barrier.Default)
