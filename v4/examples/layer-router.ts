/**
 * Sessions with HttpRouter (routes as layers, Effect 3's HttpLayerRouter): provide the session tag's
 * `routerMiddleware.layer` to the routes that use it. `npx tsx examples/layer-router.ts` serves it on port 3003
 * (PORT) with the embedded engine, or DATABASE_URL when set.
 */
import { HttpRouter, HttpServerResponse } from "effect/http"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Option, Schema } from "effect"
import { createServer } from "node:http"
import * as EmbeddedPostgres from "../src/EmbeddedPostgres.js" // "effect-session/EmbeddedPostgres"
import { PgSessionStore, SessionMiddleware } from "../src/index.js" // "effect-session"

export class RouterSession extends SessionMiddleware.Tag<RouterSession>()("RouterSession", {
  schema: Schema.Struct({ visits: Schema.Number }),
  initial: { visits: 0 }
}) {}

/** The routes, with the session middleware provided to them. Needs `RouterSession.layer(...)` and a store. */
export const Routes = HttpRouter.addAll([
  HttpRouter.route("GET", "/", Effect.gen(function*() {
    const session = yield* RouterSession
    yield* session.update((s) => ({ visits: s.visits + 1 }))
    return HttpServerResponse.text(`visits: ${(yield* session.get).visits}\n`)
  })),
  HttpRouter.route("POST", "/logout", Effect.flatMap(RouterSession, (s) => s.destroy).pipe(
    Effect.as(HttpServerResponse.text("bye\n"))
  ))
]).pipe(Layer.provide(RouterSession.routerMiddleware.layer))

if (import.meta.url === `file://${process.argv[1]}`) {
  const Store = Layer.unwrap(Effect.map(
    Config.option(Config.Redacted("DATABASE_URL")),
    Option.match({
      onSome: (url) => PgSessionStore.layerPool({ url }),
      onNone: () => PgSessionStore.layer().pipe(Layer.provide(EmbeddedPostgres.layer()))
    })
  ))
  HttpRouter.serve(Routes).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { port: Number(process.env.PORT ?? 3003) })),
    Layer.provide(RouterSession.layer()),
    Layer.provide(Store),
    Layer.launch,
    NodeRuntime.runMain
  )
}
