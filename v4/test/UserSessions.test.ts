/**
 * A user's sessions through the middleware, over HTTP on PostgreSQL: the subject set at login, "your sessions"
 * with the current one marked, revoking one (only one's own), logging out everywhere (else), and what a rotated
 * key may do (nothing).
 */
import { NodeHttpServer } from "@effect/platform-node"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { PgSessionStore, SessionKey } from "../src/index.js"
import { makeBrowser } from "./support/browser.js"
import { ServerOwnedPool, TestSchema, withSchema } from "./support/database.js"
import { Barrier, serveApp } from "./support/testApp.js"

const serve = Effect.gen(function*() {
  const tableName = (yield* TestSchema).table()
  yield* serveApp().pipe(Effect.provide(yield* Layer.build(PgSessionStore.layer({ tableName, cleanupInterval: 0 }))))
})

const http = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(Layer.merge(NodeHttpServer.layerTest, Barrier.Default)), Effect.scoped)

interface Listed {
  readonly subject: string | null
  readonly sessions: ReadonlyArray<{ id: string; current: boolean; metadata: Record<string, string>; subject: string }>
}
const listed = (reply: { readonly body: string }) => JSON.parse(reply.body) as Listed

layer(withSchema(ServerOwnedPool()), { timeout: 60_000 })("a user's sessions", (it) => {
  it.effect("two devices of one user: each lists both, itself marked; one revokes the other", () =>
    Effect.gen(function*() {
      yield* serve
      const laptop = yield* makeBrowser
      const phone = yield* makeBrowser
      yield* laptop.post("/login-as?name=ada")
      yield* phone.post("/login-as?name=ada")
      const someoneElse = yield* makeBrowser
      yield* someoneElse.post("/login-as?name=grace")

      const fromLaptop = listed(yield* laptop.get("/sessions"))
      expect(fromLaptop.subject).toBe("ada")
      expect(fromLaptop.sessions).toHaveLength(2)
      const laptopId = SessionKey.id(laptop.jar.get("__Host-session")! as SessionKey.SessionKey)
      const phoneId = SessionKey.id(phone.jar.get("__Host-session")! as SessionKey.SessionKey)
      expect(fromLaptop.sessions.map((s) => [s.id, s.current]).sort()).toEqual([[laptopId, true], [phoneId, false]].sort())
      expect(fromLaptop.sessions.every((s) => s.subject === "ada" && typeof s.metadata.userAgent === "string")).toBe(true)
      expect(JSON.stringify(fromLaptop)).not.toContain(phone.jar.get("__Host-session")!) // ids, never keys

      // Another user's session cannot be revoked through one's own list.
      const graceId = SessionKey.id(someoneElse.jar.get("__Host-session")! as SessionKey.SessionKey)
      expect((yield* laptop.post(`/revoke?id=${graceId}`)).body).toBe("false")
      expect(listed(yield* someoneElse.get("/sessions")).sessions).toHaveLength(1)

      expect((yield* laptop.post(`/revoke?id=${phoneId}`)).body).toBe("true")
      const phoneAfter = JSON.parse((yield* phone.get("/peek")).body)
      expect(phoneAfter).toMatchObject({ isNew: true, data: { user: null } }) // logged out at once
      expect(listed(yield* laptop.get("/sessions")).sessions.map((s) => s.id)).toEqual([laptopId])
    }).pipe(http))

  it.effect("log out everywhere else keeps this session; everywhere ends it too", () =>
    Effect.gen(function*() {
      yield* serve
      const devices = yield* Effect.forEach([1, 2, 3], () => makeBrowser)
      for (const device of devices) yield* device.post("/login-as?name=ada")
      const [current, second, third] = devices
      expect((yield* current!.post("/logout-everywhere?keep=1")).body).toBe("2")
      for (const device of [second!, third!]) expect(JSON.parse((yield* device.get("/peek")).body).isNew).toBe(true)
      expect(listed(yield* current!.get("/sessions")).sessions).toHaveLength(1)
      yield* second!.post("/login-as?name=ada")
      const all = yield* current!.post("/logout-everywhere")
      expect(all.body).toBe("1")
      expect(current!.jar.has("__Host-session")).toBe(false) // this session ended too: the cookie is gone
      expect(JSON.parse((yield* second!.get("/peek")).body).isNew).toBe(true)
    }).pipe(http))

  it.effect("a rotated (stale) key lists nothing and can revoke nothing", () =>
    Effect.gen(function*() {
      yield* serve
      const victim = yield* makeBrowser
      yield* victim.post("/login-as?name=ada")
      const stale = victim.jar.get("__Host-session")!
      yield* victim.post("/login-as?name=ada") // logs in again: the previous key is rotated away
      const attacker = yield* makeBrowser
      expect(listed(yield* attacker.get("/sessions", `__Host-session=${stale}`)).sessions).toEqual([])
      expect((yield* attacker.post("/logout-everywhere", `__Host-session=${stale}`)).status).toBe(409)
      const current = listed(yield* victim.get("/sessions")).sessions[0]!.id // the session's id, kept across logins
      expect((yield* attacker.post(`/revoke?id=${current}`, `__Host-session=${stale}`)).status).toBe(409)
      expect(listed(yield* victim.get("/sessions")).sessions.map((s) => s.id)).toEqual([current])
    }).pipe(http))

  it.effect("a bad subject or metadata is refused in the handler, and nothing is stored", () =>
    Effect.gen(function*() {
      yield* serve
      const browser = yield* makeBrowser
      const refused = yield* browser.post("/subject-with-huge-metadata")
      expect(refused.status).toBe(400)
      expect(refused.body).toMatch(/^invalid session metadata: is \d+ bytes as JSON/)
      expect(refused.setCookie).toEqual([])
      expect((yield* browser.post("/login-as?name=")).status).toBe(400)
    }).pipe(http))
})
