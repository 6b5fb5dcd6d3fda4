/**
 * The Effect 4 line's benchmark server: the effect-session server of the root's bench/http/server.ts (kind
 * "effect-session") on Effect 4, for bench/lines.ts. `npx tsx v4/bench/server.ts [table]`; prints its URL.
 * Routes: POST /login (creates a session), GET /read (reads it), GET /write (increments a counter in it).
 * The same session schema, store options and pool of 10 as the Effect 3 server; what differs is Effect 4's HTTP API:
 * the routes go through `HttpRouter` (v3's `HttpLayerRouter`; v3's own `HttpRouter` is gone) with the session
 * middleware as a global router middleware, as in v4/examples/server.ts, where the Effect 3 server wraps its
 * `HttpRouter` in the middleware (`HttpRouter.use`). `HttpRouter.serve`'s request logger is turned off: the Effect 3
 * server's `HttpServer.serve` has none.
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Redacted, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { createServer, type Server } from "node:http"
import { PgSessionStore, SessionMiddleware } from "../dist/index.js"

const table = process.argv[2] ?? "bench_http_effect_v4"
const url = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/test"
const embedded = process.env.BENCH_EMBEDDED === "1"

const announce = (server: Server) => {
  const address = server.address()
  if (address && typeof address === "object") console.log(`listening on http://127.0.0.1:${address.port}`)
}

/** The demo's session shape. */
const Data = Schema.Struct({ user: Schema.NullOr(Schema.String), visits: Schema.Number })

class BenchSession extends SessionMiddleware.Tag<BenchSession>()("bench/Session", {
  schema: Data,
  initial: { user: null, visits: 0 }
}) {}

const session = BenchSession
const routes = HttpRouter.addAll([
  HttpRouter.route("POST", "/login", Effect.flatMap(session, (s) => s.set({ user: "bench", visits: 0 })).pipe(Effect.as(HttpServerResponse.text("ok")))),
  HttpRouter.route("GET", "/read", Effect.map(Effect.flatMap(session, (s) => s.get), (d) => HttpServerResponse.text(`${d.user}:${d.visits}`))),
  HttpRouter.route("GET", "/write", Effect.flatMap(session, (s) => s.update((d) => ({ ...d, visits: d.visits + 1 }))).pipe(Effect.as(HttpServerResponse.text("ok"))))
]).pipe(
  Layer.provide(HttpRouter.middleware<{ provides: BenchSession }>()(BenchSession.middleware, { global: true }))
)

const server = createServer()
// BENCH_V4_LOGGER=1 keeps HttpRouter.serve's request logger (its default), to see what it costs.
const Main = HttpRouter.serve(routes, { disableLogger: process.env.BENCH_V4_LOGGER !== "1", disableListenLog: true }).pipe(
  Layer.provide(NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" })),
  Layer.provide(BenchSession.layer()),
  Layer.provide(PgSessionStore.layerPool({
    url: Redacted.make(url),
    tableName: table,
    maxConnections: 10,
    preparedStatements: !embedded,
    ...(embedded ? { pipelinedReads: 0 } : {})
  })),
  Layer.tap(() => Effect.sync(() => announce(server)))
)
NodeRuntime.runMain(Layer.launch(Main as Layer.Layer<never, unknown>))
