import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Ref } from "effect"
import { TestClock } from "effect/testing"
import { HttpServer, HttpServerResponse } from "effect/http"
import { inspect } from "node:util"
import { SessionKey, SessionStore } from "../src/index.js"
import { makeBrowser } from "./support/browser.js"
import { Barrier, CountingMemoryStore, serveApp as serve, StoreCalls, TestSession } from "./support/testApp.js"

const provide = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.provide(Layer.mergeAll(NodeHttpServer.layerTest, CountingMemoryStore, Barrier.Default)),
    Effect.scoped
  )

const json = (body: string) => JSON.parse(body) as { data: any; flashes: Record<string, string>; isNew: boolean }

const sessionCookie = (lines: ReadonlyArray<string>) => lines.find((line) => line.startsWith("__Host-session="))

describe("SessionMiddleware over HTTP", () => {
  it.effect("no cookie and no change: no session is created, nothing is stored", () =>
    Effect.gen(function*() {
      yield* serve()
      const browser = yield* makeBrowser
      const reply = yield* browser.get("/peek")
      expect(json(reply.body)).toMatchObject({ data: { user: null, visits: 0 }, isNew: true })
      expect(reply.setCookie).toEqual([])
      expect(reply.headers["vary"]).toBe("Cookie")
      expect(yield* Ref.get(yield* StoreCalls)).toBe(0)
    }).pipe(provide))

  it.effect("the first write creates the session and sets a hardened cookie; the next request sees it", () =>
    Effect.gen(function*() {
      yield* serve()
      const browser = yield* makeBrowser
      const first = yield* browser.get("/")
      const line = sessionCookie(first.setCookie)!
      expect(line).toMatch(/^__Host-session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; Secure; SameSite=Lax$/)
      expect(first.headers["cache-control"]).toBe("private, no-store")
      expect(first.headers["vary"]).toBe("Cookie")
      const second = yield* browser.get("/")
      expect(json(second.body)).toMatchObject({ data: { visits: 2 }, isNew: false })
      expect(second.setCookie).toEqual([])
    }).pipe(provide))

  it.effect("a request that changes nothing costs one read and no write", () =>
    Effect.gen(function*() {
      yield* serve()
      const browser = yield* makeBrowser
      yield* browser.get("/")
      const calls = yield* StoreCalls
      yield* Ref.set(calls, 0)
      const reply = yield* browser.get("/peek")
      expect(json(reply.body).data.visits).toBe(1)
      expect(yield* Ref.get(calls)).toBe(1)
      yield* browser.get("/plain")
      expect(yield* Ref.get(calls)).toBe(2)
    }).pipe(provide))

  it.effect("login regenerates the key; the old key works only within the stale period", () =>
    Effect.gen(function*() {
      yield* serve()
      const browser = yield* makeBrowser
      yield* browser.get("/")
      const before = browser.jar.get("__Host-session")!
      const login = yield* browser.post("/login?name=ada")
      const after = browser.jar.get("__Host-session")!
      expect(after).not.toBe(before)
      expect(SessionKey.isSessionKey(after)).toBe(true)
      expect(json(login.body).data).toMatchObject({ user: "ada", visits: 1 })
      const next = yield* browser.get("/peek")
      expect(json(next.body)).toMatchObject({ data: { user: "ada" }, flashes: { notice: "Welcome, ada" } })

      yield* TestClock.adjust("9 seconds")
      const stale = yield* browser.get("/peek", `__Host-session=${before}`)
      expect(json(stale.body)).toMatchObject({ isNew: false, data: { visits: 1 } })
      yield* TestClock.adjust("2 seconds")
      const gone = yield* browser.get("/peek", `__Host-session=${before}`)
      expect(json(gone.body)).toMatchObject({ isNew: true, data: { user: null } })
      expect(json((yield* browser.get("/peek")).body).data.user).toBe("ada")
    }).pipe(provide))

  it.effect("flash messages are readable on the next request only", () =>
    Effect.gen(function*() {
      yield* serve()
      const browser = yield* makeBrowser
      yield* browser.post("/login?name=grace")
      expect(json((yield* browser.get("/peek")).body).flashes).toEqual({ notice: "Welcome, grace" })
      expect(json((yield* browser.get("/peek")).body).flashes).toEqual({})
    }).pipe(provide))

  it.effect("destroy removes the session and expires the cookie; a flash after it starts a new one", () =>
    Effect.gen(function*() {
      yield* serve()
      const browser = yield* makeBrowser
      yield* browser.post("/login?name=ada")
      const old = browser.jar.get("__Host-session")!
      const destroyed = yield* browser.post("/destroy")
      expect(sessionCookie(destroyed.setCookie)).toMatch(/^__Host-session=; Max-Age=0; Path=\/; Expires=Thu, 01 Jan 1970/)
      expect(browser.jar.has("__Host-session")).toBe(false)
      const reuse = yield* browser.get("/peek", `__Host-session=${old}`)
      expect(json(reuse.body).isNew).toBe(true)

      yield* browser.post("/login?name=ada")
      const loggedIn = browser.jar.get("__Host-session")!
      const logout = yield* browser.post("/logout")
      expect(sessionCookie(logout.setCookie)).toMatch(/^__Host-session=[A-Za-z0-9_-]{43};/)
      expect(browser.jar.get("__Host-session")).not.toBe(loggedIn)
      const after = json((yield* browser.get("/peek")).body)
      expect(after).toMatchObject({ data: { user: null, visits: 0 }, flashes: { notice: "Logged out" } })
    }).pipe(provide))

  it.effect("idle timeout: activity slides it, silence ends the session", () =>
    Effect.gen(function*() {
      yield* serve(({ idleTimeout: "10 minutes", renewalThreshold: 0 }))
      const browser = yield* makeBrowser
      yield* browser.get("/")
      for (let i = 0; i < 5; i++) {
        yield* TestClock.adjust("9 minutes")
        expect(json((yield* browser.get("/peek")).body).isNew).toBe(false)
      }
      yield* TestClock.adjust("10 minutes")
      yield* TestClock.adjust(1)
      expect(json((yield* browser.get("/peek")).body).isNew).toBe(true)
    }).pipe(provide))

  it.effect("renewal threshold: read-only requests renew at most once per fraction of the idle timeout", () =>
    Effect.gen(function*() {
      yield* serve(({ idleTimeout: "10 minutes", renewalThreshold: 0.5 }))
      const browser = yield* makeBrowser
      yield* browser.get("/")
      const calls = yield* StoreCalls
      yield* Ref.set(calls, 0)
      yield* TestClock.adjust("4 minutes")
      yield* browser.get("/peek") // 4 of 10 minutes gone: below the threshold, no write
      expect(yield* Ref.get(calls)).toBe(1)
      yield* TestClock.adjust("2 minutes")
      yield* browser.get("/peek") // 6 minutes: renewed (one touch)
      expect(yield* Ref.get(calls)).toBe(3)
      yield* TestClock.adjust("9 minutes")
      expect(json((yield* browser.get("/peek")).body).isNew).toBe(false) // alive thanks to the renewal
    }).pipe(provide))

  it.effect("writes extend the expiry only once the renewal threshold has passed", () =>
    Effect.gen(function*() {
      yield* serve(({ idleTimeout: "10 minutes", renewalThreshold: 0.5 }))
      const browser = yield* makeBrowser
      yield* browser.get("/") // created: expires at 10:00
      yield* TestClock.adjust("2 minutes")
      yield* browser.get("/") // a write before the threshold keeps 10:00 (a HOT update in PostgreSQL)
      yield* TestClock.adjust("8 minutes")
      yield* TestClock.adjust(1)
      expect(json((yield* browser.get("/peek")).body).isNew).toBe(true) // 10:00.001: gone

      yield* browser.get("/") // a new session, expires at 20:00.001
      yield* TestClock.adjust("6 minutes")
      yield* browser.get("/") // past the threshold: extended to 26:00.001
      yield* TestClock.adjust("9 minutes")
      expect(json((yield* browser.get("/peek")).body)).toMatchObject({ isNew: false, data: { visits: 2 } })
    }).pipe(provide))

  it.effect("absolute timeout: never extended, however active", () =>
    Effect.gen(function*() {
      yield* serve(({ idleTimeout: "10 minutes", absoluteTimeout: "25 minutes", renewalThreshold: 0 }))
      const browser = yield* makeBrowser
      yield* browser.get("/")
      yield* TestClock.adjust("8 minutes")
      yield* browser.get("/")
      yield* TestClock.adjust("8 minutes")
      yield* browser.get("/")
      yield* TestClock.adjust("8 minutes")
      expect(json((yield* browser.get("/")).body).data.visits).toBe(4)
      yield* TestClock.adjust("1 minute")
      expect(json((yield* browser.get("/peek")).body).isNew).toBe(false) // exactly at the limit: still valid
      yield* TestClock.adjust(1)
      expect(json((yield* browser.get("/peek")).body).isNew).toBe(true)
    }).pipe(provide))

  it.effect("remember-me: a persistent cookie and the longer timeouts", () =>
    Effect.gen(function*() {
      yield* serve(({ idleTimeout: "10 minutes", remember: { idleTimeout: "2 days", absoluteTimeout: "10 days" } }))
      const browser = yield* makeBrowser
      const plain = yield* browser.post("/login?name=ada")
      expect(sessionCookie(plain.setCookie)).not.toMatch(/Max-Age/)
      const remembered = yield* browser.post("/login?name=ada&remember=1")
      expect(sessionCookie(remembered.setCookie)).toMatch(/Max-Age=172800;/)
      yield* TestClock.adjust("1 day")
      expect(json((yield* browser.get("/peek")).body)).toMatchObject({ isNew: false, data: { user: "ada" } })
    }).pipe(provide))

  it.effect("a failed request (5xx) applies none of its session changes, not even a rotation, and keeps the cookie", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      yield* serve().pipe(
        Effect.provide(Logger.layer([Logger.make(({ message }) => logged.push(`${message}`))]))
      )
      const browser = yield* makeBrowser
      const failed = yield* browser.get("/fail")
      expect(failed.status).toBe(500)
      expect(failed.setCookie).toEqual([]) // a new session is not created for a failed request
      yield* browser.get("/")
      const before = browser.jar.get("__Host-session")!
      const failedAgain = yield* browser.get("/fail")
      expect(failedAgain.setCookie).toEqual([])
      expect(json((yield* browser.get("/peek")).body).data).toMatchObject({ user: null, visits: 1 })
      const login = yield* browser.post("/login-then-fail?name=mallory")
      expect(login.status).toBe(500)
      expect(login.setCookie).toEqual([]) // the rotation was not applied
      expect(browser.jar.get("__Host-session")).toBe(before)
      expect(json((yield* browser.get("/peek")).body)).toMatchObject({ isNew: false, data: { user: null } })
      expect(logged.filter((line) => line.startsWith("session save skipped failed"))).toHaveLength(1) // rate-limited
    }).pipe(provide))

  it.effect("through a rotated key, destroy is refused too: the stale copy stays, no cookie is sent", () =>
    Effect.gen(function*() {
      yield* serve()
      const browser = yield* makeBrowser
      yield* browser.get("/")
      const stale = browser.jar.get("__Host-session")!
      yield* browser.post("/login?name=ada")
      const attempt = yield* browser.post("/destroy", `__Host-session=${stale}`)
      expect(attempt.status).toBe(409)
      expect(attempt.setCookie).toEqual([])
      expect(json((yield* browser.get("/peek", `__Host-session=${stale}`)).body).isNew).toBe(false) // still the stale copy
      expect(json((yield* browser.get("/peek")).body).data.user).toBe("ada")
    }).pipe(provide))

  it.effect("a response built from a loaded session is private to caches, unless the app said otherwise", () =>
    Effect.gen(function*() {
      yield* serve()
      const browser = yield* makeBrowser
      expect((yield* browser.get("/peek")).headers["cache-control"]).toBeUndefined() // no session: untouched
      yield* browser.get("/")
      const read = yield* browser.get("/peek")
      expect(read.setCookie).toEqual([])
      expect(read.headers["cache-control"]).toBe("private")
      // A loaded session whose response sets a cookie (a login's new key) is not stored by any cache.
      const login = yield* browser.post("/login")
      expect(login.setCookie).toHaveLength(1)
      expect(login.headers["cache-control"]).toBe("private, no-store")
    }).pipe(provide))

  it.effect("the session object, logged or inspected, shows neither the key nor the stored value", () =>
    Effect.gen(function*() {
      const shown: Array<string> = []
      const app = Effect.gen(function*() {
        const session = yield* TestSession
        yield* session.get
        shown.push(JSON.stringify(session), inspect(session, { depth: 10, showHidden: true }), JSON.stringify({ ...session }))
        yield* Effect.logInfo(session)
        const { get, update } = session // destructured members keep working
        yield* update((data) => ({ ...data, visits: data.visits + 1 }))
        return HttpServerResponse.text(String((yield* get).visits))
      })
      yield* HttpServer.serveEffect(TestSession.middleware(app)).pipe(
        Effect.provide(TestSession.layer()),
        Effect.provide(Logger.layer([Logger.make(({ message }) => shown.push(inspect(message, { depth: 10 })))]))
      )
      const browser = yield* makeBrowser
      expect((yield* browser.get("/")).body).toBe("1")
      const key = browser.jar.get("__Host-session")!
      shown.length = 0
      expect((yield* browser.get("/")).body).toBe("2")
      expect(shown).toHaveLength(4)
      for (const text of shown) {
        expect(text).not.toContain(key)
        expect(text).not.toContain(SessionKey.id(key as SessionKey.SessionKey))
        expect(text).not.toContain("visits")
      }
    }).pipe(provide))

  it.effect("a defect while saving is answered 500 and logged in one line, never a hung request", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      let replaying = false
      let key: string | undefined
      const app = Effect.gen(function*() {
        const session = yield* TestSession
        yield* session.update((data) => {
          if (replaying) throw new Error("a bug in an update function")
          return { ...data, visits: data.visits + 1 }
        })
        replaying = true // the save replays the update onto the stored value: it throws there
        // Another request's write lands meanwhile, so the save must replay the update onto it.
        if (key !== undefined) yield* Effect.flatMap(SessionStore.SessionStore, (store) => store.modify(key!, (v) => `${v} `))
        return HttpServerResponse.text("handled")
      })
      yield* HttpServer.serveEffect(TestSession.middleware(app)).pipe(
        Effect.provide(TestSession.layer()),
        Effect.provide(Logger.layer([Logger.make(({ message }) => logged.push(`${message}`))]))
      )
      const browser = yield* makeBrowser
      replaying = false
      const created = yield* browser.get("/")
      expect(created.status).toBe(200) // a new session stores the local result: no replay
      replaying = false
      key = browser.jar.get("__Host-session")
      const failed = yield* browser.get("/")
      expect(failed.status).toBe(500)
      expect(failed.body).toBe("Internal Server Error")
      expect(logged).toEqual([expect.stringMatching(/^session save \(defect\) failed: /)])
    }).pipe(provide))

  describe("bad cookies are no session: never a 500, never a store call", () => {
    for (const [label, header] of [
      ["malformed", "__Host-session=not-a-key"],
      ["oversized", `__Host-session=${"A".repeat(8_000)}`],
      ["wrong alphabet", `__Host-session=${"+".repeat(43)}`],
      ["duplicated", `__Host-session=${SessionKey.generate()}; __Host-session=${SessionKey.generate()}`],
      ["empty", "__Host-session="],
      ["garbage bytes", "__Host-session=%00%ff\u00e9; ;;=;"]
    ] as const) {
      it.effect(label, () =>
        Effect.gen(function*() {
          yield* serve()
          const browser = yield* makeBrowser
          const reply = yield* browser.get("/peek", header)
          expect(reply.status).toBe(200)
          expect(json(reply.body).isNew).toBe(true)
          expect(yield* Ref.get(yield* StoreCalls)).toBe(0)
        }).pipe(provide))
    }
  })

  it.effect("a stored value that no longer decodes is no session (logged, without the data), never a 500", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      yield* serve().pipe(
        Effect.provide(Logger.layer([Logger.make(({ message }) => logged.push(String(message)))]))
      )
      const store = yield* SessionStore.SessionStore
      const browser = yield* makeBrowser
      for (const value of [
        JSON.stringify({ v: 1, d: { user: 42, visits: "many" }, f: {}, c: 0, r: false }),
        "not json at all",
        JSON.stringify({ something: "else" })
      ]) {
        const key = yield* store.generate({ value })
        const reply = yield* browser.get("/peek", `__Host-session=${key}`)
        expect(reply.status).toBe(200)
        expect(json(reply.body)).toMatchObject({ isNew: true, data: { user: null, visits: 0 } })
      }
      expect(logged).toContain("ignoring a stored session: data does not decode with the schema at user")
      expect(logged.join("\n")).not.toContain("many")
      expect(logged).toContain("ignoring a stored session: not JSON")
    }).pipe(provide))

  it.effect("a cookie header too large for Node's parser is a 431, not a 500, and never reaches the store", () =>
    Effect.gen(function*() {
      yield* serve()
      const browser = yield* makeBrowser
      const reply = yield* browser.get("/peek", `__Host-session=${"A".repeat(100_000)}`)
      expect(reply.status).toBe(431)
      expect(yield* Ref.get(yield* StoreCalls)).toBe(0)
    }).pipe(provide))

  it.effect("overlapping requests on one session keep each other's changes", () =>
    Effect.gen(function*() {
      yield* serve()
      const browser = yield* makeBrowser
      yield* browser.get("/")
      yield* Effect.all([
        browser.get("/overlap?field=a&value=from-a"),
        browser.get("/overlap?field=b&value=from-b")
      ], { concurrency: 2 })
      const data = json((yield* browser.get("/peek")).body).data
      expect(data).toMatchObject({ a: "from-a", b: "from-b", visits: 3 })
    }).pipe(provide))

  it.effect("rejects invalid configuration with InvalidConfig when the layer is built, never in a request", () =>
    Effect.gen(function*() {
    for (const [option, options] of [
      ["cookie", { cookie: { name: "__Host-session", path: "/app" } }],
      ["cookie", { cookie: { name: "__Host-session", domain: "example.com" } }],
      ["cookie", { cookie: { name: "__Host-session", secure: false } }],
      ["cookie", { cookie: { name: "__Secure-session", secure: false } }],
      ["cookie", { cookie: { name: "bad name;" } }],
      ["cookie", { cookie: { sameSite: "none", secure: false } }],
      ["idleTimeout", { idleTimeout: 0 }],
      ["absoluteTimeout", { absoluteTimeout: Infinity }],
      ["renewalThreshold", { renewalThreshold: 2 }],
      ["staleTimeout", { staleTimeout: "soon" }],
      ["cookie", { cookie: { domain: "exa mple.com" } }],
      ["cookie", { cookie: { domain: "example.com;evil=1" } }],
      ["cookie", { cookie: { path: "/a;b" } }],
      ["cookie", { cookie: { sameSite: "sometimes" } }],
      ["idleTimeout", { idleTimeout: 1e16 }],
      ["renewalThreshold", { renewalThreshold: Number.NaN }]
    ] as const) {
      const error = yield* Effect.flip(Layer.build(TestSession.layer(options as never)))
      expect(error).toMatchObject({ _tag: "InvalidConfig", option })
    }
    yield* Layer.build(TestSession.layer({ cookie: { name: "__Host-session" } }))
    yield* Layer.build(TestSession.layer({ cookie: { domain: "example.com", path: "/app" } }))
  }).pipe(Effect.scoped))
})
