/**
 * Sessions with HttpLayerRouter (routes as layers): provide the session tag's `routerMiddleware.layer` to the
 * routes that use it. `npx tsx examples/layer-router.ts` serves it on port 3003 (PORT) with the embedded engine,
 * or DATABASE_URL when set.
 */
import { HttpLayerRouter, HttpServerResponse } from "effect/http"
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
export const Routes = HttpLayerRouter.addAll([
  HttpLayerRouter.route("GET", "/", Effect.gen(function*() {
    const session = yield* RouterSession
    yield* session.update((s) => ({ visits: s.visits + 1 }))
    return HttpServerResponse.text(`visits: ${(yield* session.get).visits}\n`)
  })),
  HttpLayerRouter.route("POST", "/logout", Effect.flatMap(RouterSession, (s) => s.destroy).pipe(
    Effect.as(HttpServerResponse.text("bye\n"))
  ))
]).pipe(Layer.provide(RouterSession.routerMiddleware.layer))

if (import.meta.url === `file://${process.argv[1]}`) {
  const Store = Layer.unwrapEffect(Effect.map(
    Config.option(Config.redacted("DATABASE_URL")),
    Option.match({
      onSome: (url) => PgSessionStore.layerPool({ url }),
      onNone: () => PgSessionStore.layer().pipe(Layer.provide(EmbeddedPostgres.layer()))
    })
  ))
  HttpLayerRouter.serve(Routes).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { port: Number(process.env.PORT ?? 3003) })),
    Layer.provide(RouterSession.layer()),
    Layer.provide(Store),
    Layer.launch,
    NodeRuntime.runMain
  )
}
