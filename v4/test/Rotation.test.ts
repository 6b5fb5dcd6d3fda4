/**
 * Key rotation under attack, through real HTTP round trips on PostgreSQL (the server, and the embedded engine).
 *
 * The attacker holds K0, the key the victim had before logging in (planted by fixation, or read before login).
 * After the login rotates K0 to K1, K0 must read only what it held before, refuse every write, never be rotated
 * again, and disappear after the stale period; and no write on it may be acknowledged and then dropped.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { SqlClient } from "effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import * as EmbeddedPostgres from "../src/EmbeddedPostgres.js"
import { PgSessionStore } from "../src/index.js"
import { makeBrowser } from "./support/browser.js"
import { ServerOwnedPool, TestSchema, withSchema } from "./support/database.js"
import { Barrier, serveApp } from "./support/testApp.js"

const staleTimeout = 3_000

/** Serves the test app on a fresh table; returns the table's name. */
const serve = Effect.gen(function*() {
  const tableName = (yield* TestSchema).table()
  yield* serveApp({ staleTimeout }).pipe(Effect.provide(yield* Layer.build(PgSessionStore.layer({ tableName, cleanupInterval: 0 }))))
  return tableName
})

const http = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(Layer.merge(NodeHttpServer.layerTest, Barrier.Default)), Effect.scoped)

const body = (reply: { readonly body: string }) =>
  JSON.parse(reply.body) as { data: { user: string | null; visits: number }; flashes: Record<string, string>; isNew: boolean }

const rotationSuite = (name: string, database: Layer.Layer<any, unknown>) =>
  layer(withSchema(database), { timeout: 120_000 })(`key rotation on ${name}`, (it) => {
    it.effect("right after login, the old key does not show the logged-in user", () =>
      Effect.gen(function*() {
        yield* serve
        const victim = yield* makeBrowser
        yield* victim.get("/")
        const k0 = victim.jar.get("__Host-session")!
        const login = yield* victim.post("/login?name=ada")
        expect(login.status).toBe(200)
        expect(victim.jar.get("__Host-session")).not.toBe(k0)

        const attacker = yield* makeBrowser
        const stale = yield* attacker.get("/peek", `__Host-session=${k0}`)
        expect(stale.status).toBe(200)
        expect(body(stale)).toMatchObject({ isNew: false, data: { user: null, visits: 1 }, flashes: {} })
        expect(stale.setCookie).toEqual([])
        expect(body(yield* victim.get("/peek")).data).toMatchObject({ user: "ada", visits: 1 })
      }).pipe(http))

    it.effect("a stale key cannot be rotated, written or logged in with, and is gone after the stale period", () =>
      Effect.gen(function*() {
        yield* serve
        const victim = yield* makeBrowser
        yield* victim.get("/")
        const k0 = victim.jar.get("__Host-session")!
        yield* victim.post("/login?name=ada")
        const k1 = victim.jar.get("__Host-session")!

        const attacker = yield* makeBrowser
        for (const attempt of [
          attacker.post("/regenerate", `__Host-session=${k0}`),
          attacker.post("/login?name=mallory", `__Host-session=${k0}`),
          attacker.get("/", `__Host-session=${k0}`)
        ]) {
          const reply = yield* attempt
          expect(reply.status).toBe(409)
          expect(reply.setCookie).toEqual([]) // no new key, and the victim's cookie is never cleared
          expect(reply.body).toMatch(/^Conflict: /)
        }
        expect(attacker.jar.size).toBe(0)
        expect(body(yield* victim.get("/peek")).data).toMatchObject({ user: "ada", visits: 1 })
        expect(body(yield* attacker.get("/peek", `__Host-session=${k0}`)).data).toMatchObject({ user: null, visits: 1 })

        yield* TestClock.adjust(staleTimeout + 1)
        const gone = yield* attacker.get("/peek", `__Host-session=${k0}`)
        expect(body(gone)).toMatchObject({ isNew: true, data: { user: null, visits: 0 } })
        expect(body(yield* victim.get("/peek", `__Host-session=${k1}`)).data).toMatchObject({ user: "ada", visits: 1 })
      }).pipe(http))

    it.effect("concurrent increments across a rotation: every 2xx increment is visible under the new key", () =>
      Effect.gen(function*() {
        yield* serve
        const victim = yield* makeBrowser
        yield* victim.get("/")
        const k0 = victim.jar.get("__Host-session")!
        const clients = yield* Effect.forEach(Array.from({ length: 16 }), () => makeBrowser)
        const increments = Array.from({ length: 320 }, (_, i) => clients[i % 16]!)
        const replies = yield* Effect.forEach(
          Array.from({ length: increments.length + 1 }, (_, i) => i),
          (i) =>
            i === 160
              ? Effect.map(victim.post("/login?name=ada"), (reply) => ({ login: true, status: reply.status }))
              : Effect.map(increments[i > 160 ? i - 1 : i]!.get("/", `__Host-session=${k0}`), (reply) => ({
                login: false,
                status: reply.status
              })),
          { concurrency: 16 }
        )
        const login = replies.find((reply) => reply.login)!
        expect(login.status).toBe(200)
        const statuses = replies.filter((reply) => !reply.login).map((reply) => reply.status)
        const acknowledged = statuses.filter((status) => status === 200).length
        const refused = statuses.filter((status) => status === 409).length
        expect(statuses.filter((status) => status !== 200 && status !== 409)).toEqual([])
        expect(acknowledged + refused).toBe(320) // nothing else: no 5xx
        expect(acknowledged).toBeGreaterThan(0)
        expect(refused).toBeGreaterThan(0)
        const k1 = victim.jar.get("__Host-session")!
        expect(k1).not.toBe(k0)
        // The session had 1 visit before the race; every acknowledged increment is in it, and nothing else.
        expect(body(yield* victim.get("/peek")).data).toMatchObject({ user: "ada", visits: 1 + acknowledged })
        expect(body(yield* victim.get("/peek", `__Host-session=${k0}`)).data).toMatchObject({ user: null, visits: 1 + acknowledged })
      }).pipe(http))

    it.effect("a login whose new row cannot be written fails, and leaves the old session untouched", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const tableName = yield* serve
        const [schema] = tableName.split(".")
        yield* sql.unsafe(`CREATE FUNCTION ${schema}.refuse_login() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN RAISE EXCEPTION 'injected failure'; END $$`)
        yield* sql.unsafe(`CREATE TRIGGER refuse_login BEFORE INSERT ON ${tableName}
          FOR EACH ROW WHEN (NEW.value LIKE '%"user":"ada"%') EXECUTE FUNCTION ${schema}.refuse_login()`)
        const victim = yield* makeBrowser
        yield* victim.get("/")
        const k0 = victim.jar.get("__Host-session")!

        const login = yield* victim.post("/login?name=ada")
        expect(login.status).toBe(503)
        expect(login.setCookie).toEqual([])
        expect(victim.jar.get("__Host-session")).toBe(k0)
        expect(body(yield* victim.get("/peek")).data).toMatchObject({ user: null, visits: 1 })
        expect(body(yield* victim.get("/")).data).toMatchObject({ user: null, visits: 2 }) // still writable

        yield* TestClock.adjust(staleTimeout + 1_000)
        const later = yield* victim.get("/peek")
        expect(body(later)).toMatchObject({ isNew: false, data: { user: null, visits: 2 } })
      }).pipe(http))
  })

rotationSuite("the PostgreSQL server", ServerOwnedPool())
rotationSuite("the embedded engine", EmbeddedPostgres.layer())
