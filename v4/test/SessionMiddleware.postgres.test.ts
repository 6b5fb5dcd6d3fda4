import { NodeHttpServer } from "@effect/platform-node"
import { SqlClient } from "effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { PgSessionStore } from "../src/index.js"
import { makeBrowser } from "./support/browser.js"
import { ServerPgClient, TestSchema, withSchema } from "./support/database.js"
import { Barrier, serveApp } from "./support/testApp.js"

/** Serves the test app on a fresh PostgreSQL table; returns the table's name. */
const serveOnTable = Effect.gen(function*() {
  const tableName = (yield* TestSchema).table()
  yield* serveApp().pipe(Effect.provide(yield* Layer.build(PgSessionStore.layer({ tableName, cleanupInterval: 0 }))))
  return tableName
})

const http = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(Layer.merge(NodeHttpServer.layerTest, Barrier.Default)), Effect.scoped)

layer(withSchema(ServerPgClient), { timeout: 60_000 })("SessionMiddleware on PostgreSQL", (it) => {
  it.effect("10 truly overlapping requests on one session: every field and every increment survives", () =>
    Effect.gen(function*() {
      yield* serveOnTable
      const browser = yield* makeBrowser
      yield* browser.get("/")
      const replies = yield* Effect.forEach(
        Array.from({ length: 10 }, (_, i) => i),
        (i) => browser.get(`/overlap?parties=10&field=${i % 2 === 0 ? "a" : "b"}&value=v${i}`),
        { concurrency: "unbounded" }
      )
      expect(replies.map((r) => r.status)).toEqual(Array(10).fill(200))
      const data = JSON.parse((yield* browser.get("/peek")).body).data
      expect(data.visits).toBe(11)
      expect(data.a).toMatch(/^v[02468]$/)
      expect(data.b).toMatch(/^v[13579]$/)
    }).pipe(http))

  it.effect("store unavailable: a typed error the handler can catch, 503 otherwise, never an empty session", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const tableName = yield* serveOnTable
      const browser = yield* makeBrowser
      yield* browser.post("/login?name=ada")
      yield* sql.unsafe(`ALTER TABLE ${tableName} RENAME TO gone_${tableName.split(".")[1]}`)

      const unhandled = yield* browser.get("/peek")
      expect(unhandled.status).toBe(503)
      expect(unhandled.headers["retry-after"]).toBe("5")
      const handled = yield* browser.get("/guarded")
      expect(handled).toMatchObject({ status: 200, body: "handled: degraded mode" })
      expect((yield* browser.get("/plain")).status).toBe(200)

      const anonymousWrite = yield* browser.get("/", "")
      expect(anonymousWrite.status).toBe(503)
      expect(anonymousWrite.setCookie).toEqual([])

      yield* sql.unsafe(`ALTER TABLE ${tableName.split(".")[0]}.gone_${tableName.split(".")[1]} RENAME TO ${tableName.split(".")[1]}`)
      expect(JSON.parse((yield* browser.get("/peek")).body).data.user).toBe("ada")
    }).pipe(http))
})
