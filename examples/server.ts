/**
 * A complete server with sessions, as in the README: `npx tsx examples/server.ts`, then
 * `curl -i -c jar -b jar localhost:3001/` a few times.
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Schema } from "effect"
import { createServer } from "node:http"
import { EmbeddedPostgres, PgSessionStore, SessionMiddleware } from "../src/index.js" // "effect-session"

// 1. What a session holds, and what a new one starts with.
const Sessions = SessionMiddleware.make({
  schema: Schema.Struct({ user: Schema.NullOr(Schema.String), visits: Schema.Number }),
  initial: { user: null, visits: 0 },
  idleTimeout: "30 minutes",
  absoluteTimeout: "1 day"
})

// 2. Handlers reach the session through Sessions.CurrentSession.
const app = HttpRouter.empty.pipe(
  HttpRouter.get("/", Effect.gen(function*() {
    const session = yield* Sessions.CurrentSession
    yield* session.update((s) => ({ ...s, visits: s.visits + 1 }))
    const { user, visits } = yield* session.get
    return HttpServerResponse.text(`hello ${user ?? "guest"}, visit ${visits}\n`)
  })),
  HttpRouter.post("/login/:name", Effect.gen(function*() {
    const session = yield* Sessions.CurrentSession
    const { name } = yield* HttpRouter.schemaPathParams(Schema.Struct({ name: Schema.String }))
    yield* session.regenerate // new key on privilege change
    yield* session.update((s) => ({ ...s, user: name }))
    yield* session.flash("notice", `welcome, ${name}`)
    return HttpServerResponse.text("logged in\n")
  })),
  HttpRouter.post("/logout", Effect.flatMap(Sessions.CurrentSession, (s) => s.destroy).pipe(
    Effect.as(HttpServerResponse.text("logged out\n"))
  )),
  // 3. The middleware loads and saves the session around every route.
  HttpRouter.use(Sessions.middleware)
)

// 4. Provide a store: PostgreSQL via PgClient.layer({ url }) in production; the embedded engine here.
const Main = HttpServer.serve(app).pipe(
  Layer.provide(PgSessionStore.layer()),
  Layer.provide(EmbeddedPostgres.layer()),
  Layer.provide(NodeHttpServer.layer(createServer, { port: 3001 }))
)

NodeRuntime.runMain(Layer.launch(Main))
