/**
 * `npm start`: the demo server. Uses the embedded PostgreSQL engine unless DATABASE_URL is set; listens on PORT
 * (default 3000; 0 picks a free port) and prints its URL.
 */
import { HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Config, Effect, Layer, Redacted } from "effect"
import { createServer } from "node:http"
import { EmbeddedPostgres, PgSessionStore } from "../../src/index.js"
import { DemoApp } from "./app.js"

const Database = Layer.unwrapEffect(Effect.gen(function*() {
  const url = yield* Config.option(Config.redacted("DATABASE_URL"))
  if (url._tag === "Some" && Redacted.value(url.value) !== "") {
    yield* Effect.log("using the PostgreSQL server from DATABASE_URL")
    return PgClient.layer({ url: url.value, applicationName: "effect-session-demo" }) as Layer.Layer<PgClient.PgClient, unknown>
  }
  yield* Effect.log("using the embedded PostgreSQL engine (set DATABASE_URL to use a server)")
  return EmbeddedPostgres.layer()
}))

const Server = Layer.unwrapEffect(Effect.map(
  Config.integer("PORT").pipe(Config.withDefault(3000)),
  (port) => NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" })
))

const announce = Effect.flatMap(HttpServer.HttpServer, (server) => {
  const address = server.address
  return address._tag === "TcpAddress"
    ? Effect.sync(() => console.log(`effect-session demo listening on http://localhost:${address.port}/`))
    : Effect.void
})

const Main = DemoApp.pipe(
  HttpServer.serve(),
  Layer.merge(Layer.effectDiscard(announce)),
  Layer.provide(PgSessionStore.layer({ tableName: "demo_sessions" })),
  Layer.provide(Database),
  Layer.provide(Server)
)

NodeRuntime.runMain(Layer.launch(Main))
