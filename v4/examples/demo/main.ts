/**
 * `npm start`: the demo server. Uses the embedded PostgreSQL engine unless DATABASE_URL is set; listens on PORT
 * (default 3000; 0 picks a free port) and prints its URL.
 *
 * The layers are ordered so that the port opens only once the store is ready: a request can never reach a server
 * that cannot answer it yet.
 */
import { HttpRouter, HttpServer } from "effect/http"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Redacted } from "effect"
import { createServer } from "node:http"
import { PgSessionStore } from "../../src/index.js"
import * as EmbeddedPostgres from "../../src/EmbeddedPostgres.js" // "effect-session/EmbeddedPostgres"
import { DemoApp, demoOptions, DemoSession } from "./app.js"

/** The store: on the server in DATABASE_URL (the library's own pool), else on the embedded engine. */
const Store = Layer.unwrap(Effect.gen(function*() {
  const url = yield* Config.option(Config.Redacted("DATABASE_URL"))
  if (url._tag === "Some" && Redacted.value(url.value) !== "") {
    yield* Effect.log("using the PostgreSQL server from DATABASE_URL")
    return PgSessionStore.layerPool({ url: url.value, tableName: "demo_sessions", applicationName: "effect-session-demo" })
  }
  yield* Effect.log("using the embedded PostgreSQL engine (set DATABASE_URL to use a server)")
  return PgSessionStore.layer({ tableName: "demo_sessions" }).pipe(Layer.provide(EmbeddedPostgres.layer()))
}))

const Server = Layer.unwrap(Effect.map(
  Config.Int("PORT").pipe(Config.withDefault(3000)),
  (port) => NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" })
))

const announce = Effect.flatMap(HttpServer.HttpServer, (server) => {
  const address = server.address
  return address._tag !== "UnixPathAddress"
    ? Effect.sync(() => console.log(`effect-session demo listening on http://localhost:${address.port}/`))
    : Effect.void
})

// Built bottom-up: the store and the session settings first, then the server (which opens the port), then serve.
const Main = HttpRouter.serve(DemoApp, { disableLogger: true, disableListenLog: true }).pipe(
  Layer.merge(Layer.effectDiscard(announce)),
  Layer.provide(Server),
  Layer.provide(DemoSession.layer({
    ...demoOptions,
    idleTimeout: "30 minutes",
    absoluteTimeout: "12 hours",
    remember: { idleTimeout: "14 days", absoluteTimeout: "30 days" }
  })),
  Layer.provide(Store)
)

NodeRuntime.runMain(Layer.launch(Main))
