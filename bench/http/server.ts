/**
 * One benchmark server per process: `npx tsx bench/http/server.ts <kind>` (see `kinds` at the end).
 * Routes: POST /login (creates a session), GET /read (reads it), GET /write (changes it). Prints its URL.
 * All use the same database (DATABASE_URL) and a pool of 10. The library comes from `BENCH_DIST` (default the
 * built `dist/`), so the same server can run an earlier build beside the current one.
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import connectPgSimple from "connect-pg-simple"
import { Effect, Layer, Redacted, Schema } from "effect"
import express from "express"
import session from "express-session"
import { createHash } from "node:crypto"
import { createServer, type Server } from "node:http"
import pg from "pg"
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { databaseUrl, embedded } from "../lib/machine.js"

const dist = pathToFileURL(resolve(process.env.BENCH_DIST ?? resolve(import.meta.dirname, "..", "..", "dist"))).href
const { statements } = await import(`${dist}/internal/pgStatements.js`) as typeof import("../../dist/internal/pgStatements.js")
const { PgSessionStore, SessionMiddleware, SessionStore } = await import(`${dist}/index.js`) as typeof import("../../dist/index.js")

const kind = process.argv[2]
const announce = (server: Server) => {
  const address = server.address()
  if (address && typeof address === "object") console.log(`listening on http://127.0.0.1:${address.port}`)
}

/** The demo's session shape. */
const Data = Schema.Struct({ user: Schema.NullOr(Schema.String), visits: Schema.Number })

/** A diagnostic floor: the same server doing exactly one SELECT by primary key per request, no session logic. */
const effectSqlServer = (ours: boolean) => {
  const find = ours
    ? statements(`"bench_http_effect"`, "full").find
    : `SELECT value FROM bench_http_effect WHERE id = $1`
  const fixed = Buffer.alloc(32, 7)
  const id = (cookie: string | undefined) =>
    ours && cookie ? createHash("sha256").update(cookie.split("=")[1] ?? "").digest() : fixed
  const routes = HttpRouter.empty.pipe(
    HttpRouter.post("/login", HttpServerResponse.text("ok")),
    HttpRouter.get("/read", Effect.flatMap(Effect.zip(PgClient.PgClient, HttpServerRequest.HttpServerRequest), ([sql, req]) => sql.unsafe(find, [id(req.headers.cookie)]).withoutTransform).pipe(
      Effect.as(HttpServerResponse.text("bench:0")),
      Effect.orDie
    ))
  )
  const server = createServer()
  const Main = HttpServer.serve(routes).pipe(
    Layer.provide(PgClient.layer({ url: Redacted.make(databaseUrl()), maxConnections: 10 })),
    Layer.provide(NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" })),
    Layer.tap(() => Effect.sync(() => announce(server)))
  )
  NodeRuntime.runMain(Layer.launch(Main as Layer.Layer<never, unknown>))
}

class BenchSession extends SessionMiddleware.Tag<BenchSession>()("bench/Session", {
  schema: Data,
  initial: { user: null, visits: 0 }
}) {}

const effectServer = (withSessions: boolean) => {
  const Sessions = BenchSession
  const session = Sessions
  const routes = withSessions
    ? HttpRouter.empty.pipe(
      HttpRouter.post("/login", Effect.flatMap(session, (s) => s.set({ user: "bench", visits: 0 })).pipe(Effect.as(HttpServerResponse.text("ok")))),
      HttpRouter.get("/read", Effect.map(Effect.flatMap(session, (s) => s.get), (d) => HttpServerResponse.text(`${d.user}:${d.visits}`))),
      HttpRouter.get("/write", Effect.flatMap(session, (s) => s.update((d) => ({ ...d, visits: d.visits + 1 }))).pipe(Effect.as(HttpServerResponse.text("ok")))),
      HttpRouter.use(Sessions.middleware)
    )
    : HttpRouter.empty.pipe(
      HttpRouter.post("/login", HttpServerResponse.text("ok")),
      HttpRouter.get("/read", HttpServerResponse.text("bench:0")),
      HttpRouter.get("/write", HttpServerResponse.text("ok"))
    )
  const server = createServer()
  const Main = HttpServer.serve(routes).pipe(
    Layer.provide(NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" })),
    Layer.provide(withSessions ? Sessions.layer() : Layer.empty),
    Layer.provide(
      withSessions
        ? PgSessionStore.layerPool({
          url: Redacted.make(databaseUrl()),
          tableName: "bench_http_effect",
          maxConnections: 10,
          preparedStatements: !embedded(),
          ...(embedded() ? { pipelinedReads: 0 } : {})
        })
        : Layer.empty
    ),
    Layer.tap(() => Effect.sync(() => announce(server)))
  )
  NodeRuntime.runMain(Layer.launch(Main as Layer.Layer<never, unknown>))
}

const expressServer = () => {
  const PgStore = connectPgSimple(session)
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: 10 })
  const app = express()
  app.use(session({
    store: new PgStore({ pool, tableName: "bench_http_cps", createTableIfMissing: true }),
    secret: "benchmark secret",
    resave: false,
    saveUninitialized: false,
    cookie: { httpOnly: true, sameSite: "lax", secure: false, maxAge: 30 * 60 * 1000 }
  }))
  app.post("/login", (req, res) => {
    ;(req.session as any).user = "bench"
    ;(req.session as any).visits = 0
    res.send("ok")
  })
  app.get("/read", (req, res) => res.send(`${(req.session as any).user}:${(req.session as any).visits}`))
  app.get("/write", (req, res) => {
    ;(req.session as any).visits = ((req.session as any).visits ?? 0) + 1
    res.send("ok")
  })
  const server = app.listen(0, "127.0.0.1", () => announce(server))
}

/** Fastify 5 + @fastify/cookie + @fastify/session on the same connect-pg-simple store as express. */
const fastifyServer = async () => {
  const { default: Fastify } = await import("fastify")
  const { default: fastifyCookie } = await import("@fastify/cookie")
  const { default: fastifySession } = await import("@fastify/session")
  const PgStore = connectPgSimple(fastifySession as unknown as typeof session)
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: 10 })
  // connect-pg-simple's own DDL names its key "session_pkey", which the express table beside it already took.
  await pool.query(`CREATE TABLE IF NOT EXISTS bench_http_fastify (sid varchar NOT NULL PRIMARY KEY, sess json NOT NULL,
    expire timestamp(6) NOT NULL)`)
  const app = Fastify()
  await app.register(fastifyCookie)
  await app.register(fastifySession, {
    store: new PgStore({ pool, tableName: "bench_http_fastify" }) as never,
    secret: "benchmark secret, at least thirty-two characters",
    // As express-session above: save only what changed, no cookie on every response (rolling is on by default).
    saveUninitialized: false,
    rolling: false,
    cookie: { httpOnly: true, sameSite: "lax", secure: false, maxAge: 30 * 60 * 1000 }
  })
  const data = (request: { session: unknown }) => request.session as unknown as { user?: string; visits?: number }
  app.post("/login", async (request) => {
    data(request).user = "bench"
    data(request).visits = 0
    return "ok"
  })
  app.get("/read", async (request) => `${data(request).user}:${data(request).visits}`)
  app.get("/write", async (request) => {
    data(request).visits = (data(request).visits ?? 0) + 1
    return "ok"
  })
  await app.listen({ port: 0, host: "127.0.0.1" })
  announce(app.server)
}

/** A diagnostic: the store's own get on the fast path (pipelined), without the middleware. */
const storeGetServer = () => {
  const routes = HttpRouter.empty.pipe(
    HttpRouter.post("/login", Effect.flatMap(SessionStore.SessionStore, (store) => store.generate({ value: "bench" })).pipe(
      Effect.map((key) => HttpServerResponse.text("ok", { headers: { "set-cookie": `session=${key}; Path=/` } }))
    )),
    HttpRouter.get("/read", Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const store = yield* SessionStore.SessionStore
      const key = (request.headers.cookie ?? "").split("=")[1] ?? ""
      const found = yield* Effect.either(store.get(key))
      return HttpServerResponse.text(found._tag === "Right" ? found.right.value : "none")
    }))
  )
  const server = createServer()
  const Main = HttpServer.serve(routes).pipe(
    Layer.provide(NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" })),
    Layer.provide(PgSessionStore.layerPool({
      url: Redacted.make(databaseUrl()),
      tableName: "bench_http_store",
      maxConnections: 10,
      preparedStatements: !embedded(),
      ...(embedded() ? { pipelinedReads: 0 } : {})
    })),
    Layer.tap(() => Effect.sync(() => announce(server)))
  )
  NodeRuntime.runMain(Layer.launch(Main as Layer.Layer<never, unknown>))
}

if (kind === "effect-session" || kind === "effect-session-before") effectServer(true)
else if (kind === "fastify") await fastifyServer()
else if (kind === "effect-store-get") storeGetServer()
else if (kind === "effect-plain") effectServer(false)
else if (kind === "express") expressServer()
else if (kind === "effect-sql") effectSqlServer(false)
else if (kind === "effect-sql-ours") effectSqlServer(true)
else throw new Error(`unknown server ${kind}`)
