/**
 * The attacks of the 0.2 security review, re-run over HTTP: each fails on 0.2 and passes now. Revocation racing a
 * re-login, an id listed before a re-login, logout leaving a readable copy, a login inheriting an old session's
 * lifetime, CSRF by a cross-site form, a cookie tossed from a sibling subdomain, forged keys reaching the store,
 * remember-me switched off without a new cookie, and a write for data that did not change.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer, Redacted, Ref } from "effect"
import { TestClock } from "effect/testing"
import { CsrfProtection, MemorySessionStore, PgSessionStore, SessionKey, SessionStore } from "../src/index.js"
import { makeBrowser } from "./support/browser.js"
import { ServerOwnedPool, TestSchema, withSchema } from "./support/database.js"
import { Barrier, CountingMemoryStore, layerTestServer, serveApp, StoreCalls } from "./support/testApp.js"

const cookieName = "__Host-session"
const http = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(Layer.merge(layerTestServer, Barrier.Default)), Effect.scoped)
const json = (reply: { readonly body: string }) => JSON.parse(reply.body)

/** A store of a fresh table on the PostgreSQL server (or the embedded engine), for the races. */
const pgServe = Effect.gen(function*() {
  const tableName = (yield* TestSchema).table()
  const store = yield* Layer.build(PgSessionStore.layer({ tableName, cleanupInterval: 0 }))
  yield* serveApp().pipe(Effect.provide(store))
  return store
})

layer(withSchema(ServerOwnedPool()), { timeout: 120_000 })("revocation over HTTP, on PostgreSQL", (it) => {
  it.effect("log out everywhere else racing another device's re-login, 40 times: the re-login never survives as the old session", () =>
    Effect.gen(function*() {
      const context = yield* pgServe
      const store = Layer.succeedContext(context)
      for (let trial = 0; trial < 40; trial++) {
        const user = `racer-${trial}`
        const a = yield* makeBrowser
        const b = yield* makeBrowser
        yield* a.post(`/login-as?name=${user}`)
        yield* b.post(`/login-as?name=${user}`)
        const before = yield* Effect.provide(
          Effect.flatMap(SessionStore.SessionStore, (s) => s.get(b.jar.get(cookieName)!)),
          store
        )
        const [ended] = yield* Effect.all([
          a.post("/logout-everywhere?keep=1"),
          b.post(`/login-as?name=${user}`)
        ], { concurrency: 2 })
        expect(ended.body).toBe("1") // b's session ended, whichever came first
        const after = b.jar.get(cookieName)
        if (after === undefined) continue
        const now = yield* Effect.provide(
          Effect.result(Effect.flatMap(SessionStore.SessionStore, (s) => s.get(after))),
          store
        )
        // Alive only as a new session (the re-login found b logged out and started over), never as the old one.
        if (now._tag === "Success") expect(now.success.id).not.toBe(before.id)
      }
    }).pipe(http))

  it.effect("an id listed before a device logs in again still logs that device out", () =>
    Effect.gen(function*() {
      yield* pgServe
      const a = yield* makeBrowser
      const b = yield* makeBrowser
      yield* a.post("/login-as?name=ada")
      yield* b.post("/login-as?name=ada")
      const other = json(yield* a.get("/sessions")).sessions.find((s: { current: boolean }) => !s.current)
      yield* b.post("/login-as?name=ada") // b logs in again: a new key
      expect((yield* a.post(`/revoke?id=${other.id}`)).body).toBe("true")
      expect(json(yield* b.get("/peek"))).toMatchObject({ isNew: true, data: { user: null } })
      expect(json(yield* a.get("/sessions")).sessions).toHaveLength(1)
    }).pipe(http))
})

layer(Layer.merge(layerTestServer, Barrier.Default))("security defaults over HTTP, in memory", (it) => {
  // The store is built in the test's scope: it must outlive `serveApp`, which returns once the server is up.
  const serve = (options: Parameters<typeof serveApp>[0] = {}) =>
    Effect.flatMap(Layer.build(MemorySessionStore.layer({ cleanupInterval: 0 })), (store) =>
      serveApp(options).pipe(Effect.provide(store)))

  it.effect("logout by dropPrivileges leaves nothing readable through the logged-in key", () =>
    Effect.gen(function*() {
      yield* serve()
      const browser = yield* makeBrowser
      yield* browser.post("/login?name=victim")
      const loggedIn = browser.jar.get(cookieName)!
      yield* browser.post("/logout-drop")
      expect(browser.jar.get(cookieName)).not.toBe(loggedIn)
      const old = json(yield* browser.get("/peek", `${cookieName}=${loggedIn}`))
      expect(old).toMatchObject({ isNew: true, data: { user: null } })
      expect(json(yield* browser.get("/peek"))).toMatchObject({ isNew: false, data: { user: null } })
    }))

  it.effect("a login starts a fresh absolute timeout: an old anonymous session does not cut it short", () =>
    Effect.gen(function*() {
      yield* serve({ idleTimeout: "1 hour", absoluteTimeout: "12 hours" })
      const browser = yield* makeBrowser
      yield* browser.get("/") // an anonymous session
      for (let i = 0; i < 23; i++) {
        yield* TestClock.adjust("30 minutes")
        yield* browser.get("/") // kept alive, 11 h 30 min old at the end
      }
      yield* TestClock.adjust("29 minutes") // 11 h 59 min
      yield* browser.post("/login?name=ada")
      yield* TestClock.adjust("50 minutes")
      expect(json(yield* browser.get("/peek"))).toMatchObject({ isNew: false, data: { user: "ada" } })
    }))

  it.effect("a session cookie tossed from a sibling subdomain is ignored: the __Host- cookie wins", () =>
    Effect.gen(function*() {
      yield* serve()
      const victim = yield* makeBrowser
      yield* victim.post("/login?name=victim")
      const attacker = yield* makeBrowser
      yield* attacker.post("/login?name=attacker")
      const tossed = `session=${attacker.jar.get(cookieName)}`
      const reply = yield* victim.get("/peek", `${tossed}; ${cookieName}=${victim.jar.get(cookieName)}`)
      expect(json(reply).data.user).toBe("victim")
    }))

  it.effect("rememberMe(false) on a remembered session sends a browser-session cookie", () =>
    Effect.gen(function*() {
      yield* serve()
      const browser = yield* makeBrowser
      yield* browser.post("/login?name=ada&remember=1")
      const remembered = (yield* browser.post("/remember?on=1")).setCookie
      const forgotten = (yield* browser.post("/remember?on=0")).setCookie
      expect(forgotten).toHaveLength(1)
      expect(forgotten[0]).not.toMatch(/Max-Age|Expires/)
      expect(remembered.concat(forgotten).every((line) => line.startsWith(`${cookieName}=`))).toBe(true)
    }))

  it.effect("CSRF tokens: a state-changing request without the session's token is refused before its handler", () =>
    Effect.gen(function*() {
      yield* serve({ csrfTokens: true })
      const browser = yield* makeBrowser
      const token = (yield* browser.get("/token")).body // creates the session, with its secret
      expect(token).toMatch(/^[A-Za-z0-9_-]{86}$/)
      expect((yield* browser.get("/token")).body).not.toBe(token) // masked afresh on every page
      const refused = yield* browser.post("/login?name=mallory")
      expect(refused.status).toBe(403)
      expect(refused.setCookie).toEqual([])
      const forged = yield* browser.post("/login?name=mallory", undefined, { headers: { "x-csrf-token": token.slice(1) + "A" } })
      expect(forged.status).toBe(403)
      expect(json(yield* browser.get("/peek")).data.user).toBeNull() // nothing stored
      const other = yield* makeBrowser
      yield* other.get("/token") // a session of its own
      const borrowed = yield* other.post("/login?name=mallory", undefined, { headers: { "x-csrf-token": token } })
      expect(borrowed.status).toBe(403) // a token of another session
      expect(json(yield* other.get("/peek")).data.user).toBeNull()
      const viaHeader = yield* browser.post("/login?name=ada", undefined, { headers: { "x-csrf-token": token } })
      expect(viaHeader.status).toBe(200)
      // The token changed with the key at login: the old one is refused, the new one (a form field) passes.
      expect((yield* browser.post("/regenerate", undefined, { headers: { "x-csrf-token": token } })).status).toBe(403)
      const fresh = (yield* browser.get("/token")).body
      expect((yield* browser.post("/regenerate", undefined, { form: { _csrf: fresh } })).status).toBe(200)
    }))

  it.effect("a cross-site form POST to log in is refused with 403 by the guard: no cookie, nothing stored", () =>
    Effect.gen(function*() {
      const calls = yield* StoreCalls
      const counted = yield* Layer.build(CountingMemoryStore)
      yield* serveApp({}, CsrfProtection.middleware()).pipe(Effect.provide(counted))
      const victim = yield* makeBrowser
      for (const path of ["/login?name=attacker", "/logout", "/logout-everywhere", "/destroy"]) {
        const reply = yield* victim.post(path, undefined, {
          headers: { origin: "https://evil.example", "sec-fetch-site": "cross-site" },
          form: { name: "attacker" }
        })
        expect(reply.status, path).toBe(403)
        expect(reply.setCookie).toEqual([])
      }
      expect(victim.jar.size).toBe(0)
      expect(yield* Ref.get(calls)).toBe(0) // the session was never loaded, created or stored
    }).pipe(Effect.provide(StoreCalls.Default)))
})

layer(Layer.mergeAll(layerTestServer, Barrier.Default, Layer.provideMerge(CountingMemoryStore, StoreCalls.Default)))("signed cookies", (it) => {
  const secrets = [Redacted.make("a".repeat(32)), Redacted.make("b".repeat(32))]
  describe("with secrets", () => {
    it.effect("1,000 random well-formed keys never reach the store; a signed cookie does, under every secret", () =>
      Effect.gen(function*() {
        yield* serveApp({ cookie: { secrets } })
        const calls = yield* StoreCalls
        const browser = yield* makeBrowser
        yield* browser.get("/")
        const signed = browser.jar.get(cookieName)!
        expect(signed).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/)
        yield* Ref.set(calls, 0)
        for (let i = 0; i < 1_000; i++) {
          const key = SessionKey.generate()
          yield* browser.get("/peek", `${cookieName}=${i % 2 === 0 ? key : `${key}.${signed.split(".")[1]}`}`)
        }
        expect(yield* Ref.get(calls)).toBe(0)
        expect(json(yield* browser.get("/peek")).data.visits).toBe(1)
        expect(yield* Ref.get(calls)).toBe(1)
      }))
    it.effect("a secret rotated in verifies cookies signed by the one before it", () =>
      Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* Effect.scoped(Effect.gen(function*() {
          yield* serveApp({ cookie: { secrets: [secrets[1]!] } })
          yield* browser.get("/")
        }))
        yield* serveApp({ cookie: { secrets } }) // a new first secret; the old one still verifies
        expect(json(yield* browser.get("/peek")).data.visits).toBe(1)
      }))
  })

  it.effect("setting the data a session already holds writes nothing", () =>
    Effect.gen(function*() {
      yield* serveApp()
      const calls = yield* StoreCalls
      const browser = yield* makeBrowser
      yield* browser.get("/")
      yield* Ref.set(calls, 0)
      const same = yield* browser.post("/same")
      expect(same.status).toBe(200)
      expect(yield* Ref.get(calls)).toBe(1) // the load, and no write
    }))
})
