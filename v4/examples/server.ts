/**
 * A complete server with sessions, as in the README: `npx tsx examples/server.ts`, then
 * `curl -i -c jar -b jar localhost:3001/` a few times. Uses DATABASE_URL when set, else the embedded engine.
 */
import { HttpRouter, HttpServerResponse } from "effect/http"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Option, Schema } from "effect"
import { createServer } from "node:http"
import { CsrfProtection, PgSessionStore, SessionMiddleware } from "../src/index.js" // "effect-session"
import * as EmbeddedPostgres from "../src/EmbeddedPostgres.js" // "effect-session/EmbeddedPostgres"

// 1. What a session holds, what a new one starts with, and the tag handlers reach it by.
class AppSession extends SessionMiddleware.Tag<AppSession>()("AppSession", {
  schema: Schema.Struct({ user: Schema.NullOr(Schema.String), visits: Schema.Number }),
  initial: { user: null, visits: 0 }
}) {}

// 2. Handlers reach the session by yielding the tag.
const app = HttpRouter.addAll([
  HttpRouter.route("GET", "/", Effect.gen(function*() {
    const session = yield* AppSession
    yield* session.update((s) => ({ ...s, visits: s.visits + 1 }))
    const { user, visits } = yield* session.get
    return HttpServerResponse.text(`hello ${user ?? "guest"}, visit ${visits}\n`)
  })),
  HttpRouter.route("POST", "/login/:name", Effect.gen(function*() {
    const session = yield* AppSession
    const { name } = yield* HttpRouter.schemaPathParams(Schema.Struct({ name: Schema.String }))
    yield* session.regenerate // new key on privilege change
    yield* session.update((s) => ({ ...s, user: name }))
    yield* session.flash("notice", `welcome, ${name}`)
    return HttpServerResponse.text("logged in\n")
  })),
  HttpRouter.route("POST", "/logout", Effect.gen(function*() {
    const session = yield* AppSession
    yield* session.dropPrivileges // a new key, and nothing left readable through the old one
    yield* session.update((s) => ({ ...s, user: null }))
    return HttpServerResponse.text("logged out\n")
  }))
]).pipe(
  // 3. The middleware loads and saves the session around every request; the guard, provided last, runs first and
  // refuses cross-site posts before they reach the session.
  Layer.provide(HttpRouter.middleware<{ provides: AppSession }>()(AppSession.middleware, { global: true })),
  Layer.provide(HttpRouter.middleware(CsrfProtection.middleware(), { global: true }))
)

// 4. A store: PostgreSQL on a pool the library owns (DATABASE_URL), or the embedded engine for a quick try.
const Store = Layer.unwrap(Effect.map(
  Config.option(Config.Redacted("DATABASE_URL")),
  Option.match({
    onSome: (url) => PgSessionStore.layerPool({ url }),
    onNone: () => PgSessionStore.layer().pipe(Layer.provide(EmbeddedPostgres.layer()))
  })
))

// 5. Layers build bottom-up: store and settings first, then the server opens its port, then it serves.
const Main = HttpRouter.serve(app).pipe(
  Layer.provide(NodeHttpServer.layer(createServer, { port: Number(process.env.PORT ?? 3001) })),
  Layer.provide(AppSession.layer({ idleTimeout: "30 minutes", absoluteTimeout: "1 day" })),
  Layer.provide(Store)
)

NodeRuntime.runMain(Layer.launch(Main))
