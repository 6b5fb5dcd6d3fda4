/**
 * The session in an HttpApi (examples/httpapi), through HttpApiBuilder and a real HTTP server, on PostgreSQL.
 */
import { HttpClient, HttpClientRequest, HttpRouter } from "effect/http"
import { OpenApi } from "effect/http-api"
import { NodeHttpServer } from "@effect/platform-node"
import { SqlClient } from "effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Api, ApiLive, ApiSession } from "../examples/httpapi/api.js"
import { PgSessionStore } from "../src/index.js"
import { ServerOwnedPool, TestSchema, withSchema } from "./support/database.js"

/** A client that keeps the session cookie. */
const makeClient = Effect.gen(function*() {
  const client = yield* HttpClient.HttpClient
  let cookie: string | undefined
  const send = (request: HttpClientRequest.HttpClientRequest) =>
    Effect.gen(function*() {
      const response = yield* client.execute(cookie === undefined ? request : HttpClientRequest.setHeader(request, "cookie", cookie))
      const set = ([] as Array<string>).concat(response.headers["set-cookie"] ?? [])
      for (const line of set) {
        const [pair] = line.split(";")
        cookie = pair!.endsWith("=") ? undefined : pair
      }
      return { status: response.status, headers: response.headers, body: yield* response.text }
    }).pipe(Effect.scoped)
  return {
    get: (path: string) => send(HttpClientRequest.get(path)),
    post: (path: string, json?: unknown) =>
      send(json === undefined ? HttpClientRequest.post(path) : HttpClientRequest.bodyJsonUnsafe(HttpClientRequest.post(path), json)),
    cookie: () => cookie
  }
})

/** Serves the example API on a fresh table; returns the table's name. */
const serve = Effect.gen(function*() {
  const tableName = (yield* TestSchema).table()
  const server = HttpRouter.serve(ApiLive, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provide(ApiSession.layer()),
    Layer.provide(PgSessionStore.layer({ tableName, cleanupInterval: 0 }))
  )
  yield* Layer.build(server)
  return tableName
})

/** The example API served, and a client logged in as "ada". */
const servedLoggedIn = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const tableName = yield* serve
  const client = yield* makeClient
  yield* client.post("/login", { name: "ada" })
  return { client, sql, tableName }
})

layer(withSchema(ServerOwnedPool()), { timeout: 60_000 })("sessions in an HttpApi", (it) => {
  it.effect("login rotates the key, the counter counts, logout ends the session", () =>
    Effect.gen(function*() {
      yield* serve
      const client = yield* makeClient
      const anonymous = yield* client.post("/count")
      expect(anonymous).toMatchObject({ status: 200 })
      expect(JSON.parse(anonymous.body)).toEqual({ user: null, count: 1 })
      const before = client.cookie()
      const login = yield* client.post("/login", { name: "ada" })
      expect(login.status).toBe(200)
      expect(JSON.parse(login.body)).toEqual({ user: "ada", count: 1 })
      expect(client.cookie()).not.toBe(before)
      expect(JSON.parse((yield* client.post("/count")).body)).toEqual({ user: "ada", count: 2 })
      expect(JSON.parse((yield* client.get("/me")).body)).toEqual({ user: "ada", count: 2 })
      expect((yield* client.post("/logout")).status).toBe(204)
      expect(client.cookie()).toBeUndefined()
      expect(JSON.parse((yield* client.get("/me")).body)).toEqual({ user: null, count: 0 })
    }).pipe(Effect.provide(NodeHttpServer.layerTest), Effect.scoped))

  it.effect("a bad payload is a 400 and stores nothing; a write on a rotated key is a declared 409", () =>
    Effect.gen(function*() {
      yield* serve
      const client = yield* makeClient
      const bad = yield* client.post("/login", { name: "   " })
      expect(bad.status).toBe(400)
      expect(client.cookie()).toBeUndefined()
      yield* client.post("/count")
      const stale = client.cookie()!
      yield* client.post("/login", { name: "ada" })
      const attacker = yield* HttpClient.HttpClient
      const refused = yield* attacker.execute(HttpClientRequest.post("/count").pipe(HttpClientRequest.setHeader("cookie", stale)))
      expect(refused.status).toBe(409)
      expect(yield* refused.json).toEqual({ _tag: "SessionConflict", reason: "Rotated" })
      expect(refused.headers["set-cookie"]).toBeUndefined()
    }).pipe(Effect.provide(NodeHttpServer.layerTest), Effect.scoped))

  it.effect("an outage: 503 with Retry-After and a body that says only that sessions are unavailable", () =>
    Effect.gen(function*() {
      const { client, sql, tableName } = yield* servedLoggedIn
      const [schema, table] = tableName.split(".")
      yield* sql.unsafe(`ALTER TABLE ${tableName} RENAME TO gone_${table}`)
      const down = yield* client.post("/count")
      expect(down.status).toBe(503)
      expect(down.headers["retry-after"]).toBe("5")
      expect(JSON.parse(down.body)).toEqual({ _tag: "SessionUnavailable", message: "sessions are temporarily unavailable" })
      expect(down.body).not.toMatch(/SessionStoreError|relation|gone_|cause/)
      yield* sql.unsafe(`ALTER TABLE ${schema}.gone_${table} RENAME TO ${table}`)
      expect(JSON.parse((yield* client.get("/me")).body)).toEqual({ user: "ada", count: 0 })
    }).pipe(Effect.provide(NodeHttpServer.layerTest), Effect.scoped))

  it.effect("a save that fails after the handler ran answers the declared JSON 503, and the handler's 200 is not sent", () =>
    Effect.gen(function*() {
      const { client, sql, tableName } = yield* servedLoggedIn
      const [schema] = tableName.split(".")
      // The load (a SELECT) succeeds; the save (an UPDATE) fails.
      yield* sql.unsafe(`CREATE FUNCTION ${schema}.refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'no updates'; END $$`)
      yield* sql.unsafe(`CREATE TRIGGER refuse_update BEFORE UPDATE ON ${tableName}
        FOR EACH ROW EXECUTE FUNCTION ${schema}.refuse_update()`)
      const down = yield* client.post("/count")
      expect(down.status).toBe(503)
      expect(down.headers["retry-after"]).toBe("5")
      expect(down.headers["content-type"]).toMatch(/^application\/json/)
      expect(JSON.parse(down.body)).toEqual({ _tag: "SessionUnavailable", message: "sessions are temporarily unavailable" })
      yield* sql.unsafe(`DROP TRIGGER refuse_update ON ${tableName}`)
      expect(JSON.parse((yield* client.get("/me")).body)).toEqual({ user: "ada", count: 0 })
    }).pipe(Effect.provide(NodeHttpServer.layerTest), Effect.scoped))

  it("the OpenAPI document declares the session's 503 and 409 on every endpoint of the group", () => {
    const spec = OpenApi.fromApi(Api)
    for (const [path, method] of [["/login", "post"], ["/me", "get"], ["/count", "post"], ["/logout", "post"]] as const) {
      const responses = (spec.paths[path] as Record<string, { responses: Record<string, unknown> }>)[method]!.responses
      expect(Object.keys(responses), `${method} ${path}`).toEqual(expect.arrayContaining(["409", "503"]))
    }
  })

  it.effect("a form posted from another site (urlencoded or multipart) is the declared 403, before any session", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const tableName = yield* serve
      const client = yield* HttpClient.HttpClient
      const crossSite = { origin: "https://evil.example", "sec-fetch-site": "cross-site" }
      for (const body of [
        HttpClientRequest.bodyUrlParams({ name: "attacker" }),
        HttpClientRequest.bodyFormData((() => {
          const form = new FormData()
          form.append("name", "attacker")
          return form
        })())
      ]) {
        const reply = yield* client.execute(HttpClientRequest.post("/login").pipe(HttpClientRequest.setHeaders(crossSite), body))
          .pipe(Effect.flatMap((r) => Effect.map(r.json, (json) => ({ status: r.status, json, cookie: r.headers["set-cookie"] }))), Effect.scoped)
        expect(reply).toMatchObject({ status: 403, json: { _tag: "CrossOriginForbidden", reason: "Sec-Fetch-Site" } })
        expect(reply.cookie).toBeUndefined()
      }
      expect(yield* sql.unsafe(`SELECT 1 FROM ${tableName}`)).toEqual([])
      const spec = OpenApi.fromApi(Api)
      expect(Object.keys(spec.paths["/login"]!.post!.responses)).toContain("403")
    }).pipe(Effect.provide(NodeHttpServer.layerTest), Effect.scoped))
})
