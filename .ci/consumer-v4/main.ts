/**
 * A consumer of the packed Effect 4 line, installed as v4/README.md says, with PGlite and better-sqlite3 absent: the
 * root entry and the subpath entries it needs, type-checked strictly and run against the PostgreSQL server in
 * DATABASE_URL; building the SQLite store fails with a typed error that names the missing engine.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Config, Effect, Layer, Schema } from "effect"
import { HttpClient, HttpRouter, HttpServerResponse } from "effect/http"
import { PgSessionStore, SessionMiddleware, SessionStore, SqliteSessionStore } from "effect-session"
import * as SessionKey from "effect-session/SessionKey"
import { SessionConflict } from "effect-session/SessionMiddleware"
import { existsSync } from "node:fs"

class AppSession extends SessionMiddleware.Tag<AppSession>()("AppSession", {
  schema: Schema.Struct({ visits: Schema.Number }),
  initial: { visits: 0 }
}) {}

const app = HttpRouter.add("GET", "/", Effect.gen(function*() {
  const session = yield* AppSession
  yield* session.update((s) => ({ visits: s.visits + 1 }))
  return HttpServerResponse.text(String((yield* session.get).visits))
})).pipe(Layer.provide(AppSession.routerMiddleware.layer))

const program = Effect.gen(function*() {
  const store = yield* SessionStore.SessionStore
  const key = yield* store.generate({ value: "hello", expiry: "1 minute" })
  if (!SessionKey.isSessionKey(key) || (yield* store.get(key)).value !== "hello") throw new Error("store round trip")
  const rotation = yield* store.rotate(key, (v) => v + "!")
  if ((yield* Effect.flip(store.set(key, "x")))._tag !== "Rotated") throw new Error("rotated key accepted a write")

  const client = yield* HttpClient.HttpClient
  const first = yield* client.get("/")
  const cookie = first.headers["set-cookie"]
  const second = yield* client.get("/", { headers: { cookie: String(cookie).split(";")[0]! } })
  if ((yield* second.text) !== "2") throw new Error("session not kept across requests")
  const conflict: SessionConflict = new SessionConflict({ reason: "Rotated" })
  // The root entry imports without better-sqlite3 (an optional peer); only building the SQLite store needs it.
  const absent = yield* Effect.flip(Effect.scoped(Layer.build(SqliteSessionStore.layer({ filename: "unused.db" }))))
  if (absent._tag !== "InvalidConfig" || absent.option !== "engine") throw new Error("no engine, yet no InvalidConfig")
  console.log(`consumer OK (Effect 4): rotated to ${rotation.key.slice(0, 4)}…, ${conflict._tag} typed, PGlite installed: ${
    existsSync("node_modules/@electric-sql/pglite")
  }, SQLite store without its engine: ${absent._tag}(${absent.option})`)
})

const Store = PgSessionStore.layerPoolConfig({
  url: Config.Redacted("DATABASE_URL"),
  tableName: Config.succeed("consumer_sessions")
})

const Served = HttpRouter.serve(app).pipe(
  Layer.provideMerge(NodeHttpServer.layerTest),
  Layer.provide(AppSession.layer())
)

program.pipe(
  Effect.provide(Served),
  Effect.provide(Store),
  Effect.scoped,
  Effect.runPromise
).catch((error) => {
  console.error(error)
  process.exit(1)
})
