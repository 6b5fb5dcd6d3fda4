import { Headers, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import { HttpSession, MemorySessionStore, SessionKey, SessionMiddleware, SessionStore } from "../src/index.js"
import { makeBrowser } from "./support/browser.js"

const Store = MemorySessionStore.layer({ cleanupInterval: 0 })
const cookieHeaders = (key: string) => Headers.fromInput({ cookie: `other=1; sid=${key}` })

describe("HttpSession (the Session_cohttp parallel)", () => {
  it.effect("generate: a modified session holding the value, with the expiry period", () =>
    Effect.gen(function*() {
      const session = yield* HttpSession.generate({ expiry: "1 hour" }, "v")
      expect(session).toMatchObject({ value: "v", modified: true })
      expect(Duration.toMillis(session.expiryPeriod)).toBe(3_600_000)
    }).pipe(Effect.provide(Store)))

  it.effect("generate with a negative expiry: an already expired session whose cookie is cleared (no defect)", () =>
    Effect.gen(function*() {
      const session = yield* HttpSession.generate({ expiry: -1000 }, "v")
      expect(Duration.toMillis(session.expiryPeriod)).toBe(0)
      expect(HttpSession.toCookieHeaders("sid", session)["set-cookie"]).toMatch(/^sid=; Max-Age=0;/)
      expect((yield* Effect.flip(HttpSession.ofKey(session.key)))._tag).toBe("Expired")
    }).pipe(Effect.provide(Store)))

  it.effect("generate and set without an expiry use the store's default period", () =>
    Effect.gen(function*() {
      const session = yield* HttpSession.generate({}, "v")
      expect(Duration.toMillis(session.expiryPeriod)).toBe(Duration.toMillis(Duration.weeks(1)))
      const updated = yield* HttpSession.set({ value: "w" }, session)
      expect(Duration.toMillis(updated.expiryPeriod)).toBe(Duration.toMillis(Duration.weeks(1)))
    }).pipe(Effect.provide(Store)))

  it.effect("a record loaded before a log-out-everywhere cannot bring the session back by set", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore.SessionStore
      const key = yield* store.generate({ value: "logged in", subject: "victim" })
      const loaded = yield* HttpSession.ofKey(key) // a request loads the session...
      expect(yield* store.revokeSubject("victim")).toBe(1) // ...the user logs out everywhere...
      expect((yield* Effect.flip(HttpSession.set({ value: "saved late" }, loaded)))._tag).toBe("NotFound") // ...it saves
      expect((yield* Effect.flip(HttpSession.ofKey(key)))._tag).toBe("NotFound")
      expect(yield* store.revokeSubject("victim")).toBe(0)
    }).pipe(Effect.provide(Store)))

  it.effect("a rotated key's record says it is read-only, and its writes are refused without touching the store", () =>
    Effect.gen(function*() {
      const session = yield* HttpSession.generate({}, "before")
      const rotated = yield* HttpSession.rotate({ value: "after" }, session)
      const stale = yield* HttpSession.ofKey(session.key)
      expect(stale).toMatchObject({ value: "before", rotated: true })
      expect(rotated.rotated).toBe(false)
      for (const write of [HttpSession.set({ value: "x" }, stale), HttpSession.rotate({}, stale), HttpSession.clear(stale)]) {
        expect((yield* Effect.flip(write as Effect.Effect<unknown, { readonly _tag: string }, SessionStore.SessionStore>))._tag)
          .toBe("Rotated")
      }
      expect((yield* HttpSession.ofKey(rotated.key)).value).toBe("after")
    }).pipe(Effect.provide(Store)))

  it.effect("ofKey and ofHeader load an unmodified session; no cookie is None; unknown is NotFound", () =>
    Effect.gen(function*() {
      const { key } = yield* HttpSession.generate({}, "stored")
      expect(yield* HttpSession.ofKey(key)).toMatchObject({ key, value: "stored", modified: false })
      const fromHeader = yield* HttpSession.ofHeader("sid", cookieHeaders(key))
      expect(Option.getOrThrow(fromHeader)).toMatchObject({ value: "stored", modified: false })
      expect(yield* HttpSession.ofHeader("sid", Headers.fromInput({ cookie: "other=1" }))).toEqual(Option.none())
      expect(yield* HttpSession.ofHeader("sid", Headers.empty)).toEqual(Option.none())
      const unknown = yield* Effect.flip(HttpSession.ofHeader("sid", cookieHeaders(SessionKey.generate())))
      expect(unknown._tag).toBe("NotFound")
    }).pipe(Effect.provide(Store)))

  it.effect("ofHeaderOrCreate: the live session, or a new one with the default value", () =>
    Effect.gen(function*() {
      const { key } = yield* HttpSession.generate({ expiry: "1 minute" }, "live")
      expect((yield* HttpSession.ofHeaderOrCreate({}, "sid", "default", cookieHeaders(key))).value).toBe("live")
      const created = yield* HttpSession.ofHeaderOrCreate({}, "sid", "default", Headers.empty)
      expect(created).toMatchObject({ value: "default", modified: true })
      expect(created.key).not.toBe(key)
      yield* TestClock.adjust("2 minutes")
      const replaced = yield* HttpSession.ofHeaderOrCreate({}, "sid", "default", cookieHeaders(key))
      expect(replaced.value).toBe("default")
      expect(replaced.key).not.toBe(key)
    }).pipe(Effect.provide(Store)))

  it.effect("rotate: a new key with the (new) value; the old key reads as before, refuses writes, then is gone", () =>
    Effect.gen(function*() {
      const before = yield* HttpSession.generate({ expiry: "1 hour" }, "anonymous")
      const after = yield* HttpSession.rotate({ value: "logged in", expiry: "2 hours", staleTimeout: "5 seconds" }, before)
      expect(after).toMatchObject({ value: "logged in", modified: true })
      expect(after.key).not.toBe(before.key)
      expect(Duration.toMillis(after.expiryPeriod)).toBe(7_200_000)
      expect(HttpSession.toCookieHeaders("sid", after)["set-cookie"]).toContain(`sid=${after.key};`)
      expect(yield* HttpSession.ofKey(before.key)).toMatchObject({ value: "anonymous" })
      expect((yield* Effect.flip(HttpSession.set({ value: "hijack" }, before)))._tag).toBe("Rotated")
      expect((yield* Effect.flip(HttpSession.rotate({ value: "again" }, before)))._tag).toBe("Rotated")
      yield* TestClock.adjust("6 seconds")
      expect((yield* Effect.flip(HttpSession.ofKey(before.key)))._tag).toBe("Expired")
      expect((yield* HttpSession.ofKey(after.key)).value).toBe("logged in")
      const kept = yield* HttpSession.rotate({}, after)
      expect(kept.value).toBe("logged in")
    }).pipe(Effect.provide(Store)))

  it.effect("set changes value and expiry (or only the expiry) and marks the session modified", () =>
    Effect.gen(function*() {
      const loaded = yield* Effect.flatMap(HttpSession.generate({}, "a"), (s) => HttpSession.ofKey(s.key))
      const updated = yield* HttpSession.set({ value: "b", expiry: "5 minutes" }, loaded)
      expect(updated).toMatchObject({ value: "b", modified: true })
      expect(loaded.modified).toBe(false) // immutable
      const touched = yield* HttpSession.set({ expiry: "10 minutes" }, updated)
      expect(touched.value).toBe("b")
      expect(Duration.toMillis(touched.expiryPeriod)).toBe(600_000)
      expect((yield* HttpSession.ofKey(loaded.key)).value).toBe("b")
    }).pipe(Effect.provide(Store)))

  it.effect("clear empties the session, zeroes its period and removes it from the store", () =>
    Effect.gen(function*() {
      const session = yield* HttpSession.generate({}, "a")
      const cleared = yield* HttpSession.clear(session)
      expect(cleared).toMatchObject({ value: "", modified: true })
      expect(Duration.toMillis(cleared.expiryPeriod)).toBe(0)
      expect((yield* Effect.flip(HttpSession.ofKey(session.key)))._tag).toBe("NotFound")
    }).pipe(Effect.provide(Store)))

  describe("toCookieHeaders", () => {
    const session = (modified: boolean, ms = 3_600_000): HttpSession.HttpSession => ({
      key: SessionKey.generate(),
      rotated: false,
      value: "v",
      expiryPeriod: Duration.millis(ms),
      modified
    })
    it("an unmodified session: only Vary: Cookie", () => {
      expect(HttpSession.toCookieHeaders("sid", session(false))).toEqual({ vary: "Cookie" })
    })
    it("a modified session: Set-Cookie with Max-Age and secure defaults", () => {
      const s = session(true)
      expect(HttpSession.toCookieHeaders("sid", s)["set-cookie"]).toBe(
        `sid=${s.key}; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=Lax`
      )
    })
    it("discard makes a browser-session cookie; attributes are honoured", () => {
      const s = session(true)
      const headers = HttpSession.toCookieHeaders("sid", s, {
        discard: true,
        path: "/app",
        domain: "example.com",
        secure: false,
        httpOnly: false,
        sameSite: "strict"
      })
      expect(headers["set-cookie"]).toBe(`sid=${s.key}; Domain=example.com; Path=/app; SameSite=Strict`)
    })
    it("a cleared session: Max-Age=0, even with discard", () => {
      const cleared = { ...session(true, 0), value: "" }
      expect(HttpSession.toCookieHeaders("sid", cleared, { discard: true })["set-cookie"]).toMatch(/^sid=; Max-Age=0;/)
    })
    it("clearHeaders evicts the cookie at the given path and domain", () => {
      const headers = HttpSession.clearHeaders({ path: "/app", domain: "example.com" }, "sid")
      expect(headers["set-cookie"]).toMatch(/^sid=; Max-Age=0; Domain=example.com; Path=\/app; Expires=Thu, 01 Jan 1970/)
      expect(headers["vary"]).toBe("Cookie")
    })
  })
})

class Counter extends SessionMiddleware.Tag<Counter>()("test/Counter", {
  schema: Schema.Struct({ n: Schema.Number }),
  initial: { n: 0 }
}) {}

describe("SessionMiddleware with HttpServer.serve (no router)", () => {
  const Sessions = Counter
  it.effect("wraps a plain HttpApp", () =>
    Effect.gen(function*() {
      const app = Effect.gen(function*() {
        const session = yield* Sessions
        yield* session.update(({ n }) => ({ n: n + 1 }))
        return yield* HttpServerResponse.json(yield* session.get, {
          headers: { "cache-control": "public, max-age=60", vary: "Accept-Encoding" }
        })
      })
      yield* HttpServer.serveEffect(Sessions.middleware(app)).pipe(
        Effect.provide(Sessions.layer({ cookie: { name: "__Host-sid" } }))
      )
      const browser = yield* makeBrowser
      const first = yield* browser.get("/")
      expect(first.setCookie[0]).toMatch(/^__Host-sid=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; Secure; SameSite=Lax$/)
      expect(first.headers["cache-control"]).toBe("private, max-age=60")
      expect(first.headers["vary"]).toBe("Accept-Encoding, Cookie")
      expect(JSON.parse((yield* browser.get("/")).body)).toEqual({ n: 2 })
    }).pipe(Effect.provide(Layer.merge(NodeHttpServer.layerTest, Store)), Effect.scoped))
})

class IntCounter extends SessionMiddleware.Tag<IntCounter>()("test/IntCounter", {
  schema: Schema.Struct({ n: Schema.Int }),
  initial: { n: 0 }
}) {}

describe("SessionMiddleware with data the schema rejects", () => {
  const Sessions = IntCounter
  it.effect("setting it dies in the handler (a 500) and stores nothing", () =>
    Effect.gen(function*() {
      const app = Effect.gen(function*() {
        const session = yield* Sessions
        yield* session.set({ n: 1 })
        const { n } = yield* session.get
        if (n === 1) yield* session.update(() => ({ n: 1.5 }))
        return yield* HttpServerResponse.json(yield* session.get)
      })
      yield* HttpServer.serveEffect(Sessions.middleware(app)).pipe(Effect.provide(Sessions.layer()))
      const browser = yield* makeBrowser
      const reply = yield* browser.get("/")
      expect(reply.status).toBe(500)
      // A failed request stores nothing: not the invalid data, and not the valid change made before it either.
      expect(reply.setCookie).toEqual([])
      expect(browser.jar.has("__Host-session")).toBe(false)
    }).pipe(Effect.provide(Layer.merge(NodeHttpServer.layerTest, Store)), Effect.scoped))
})

class RenamedSession extends SessionMiddleware.Tag<RenamedSession>()("test/RenamedSession", {
  schema: Schema.Struct({
    userName: Schema.NullOr(Schema.String),
    visits: Schema.Number
  }).pipe(Schema.encodeKeys({ userName: "user_name" })),
  initial: { userName: null, visits: 0 }
}) {}

describe("SessionMiddleware with a schema that renames fields", () => {
  it.effect("set() is stored (a patch keyed by decoded names would miss the encoded fields)", () =>
    Effect.gen(function*() {
      const app = Effect.gen(function*() {
        const session = yield* RenamedSession
        const request = yield* HttpServerRequest.HttpServerRequest
        if (request.method === "POST") yield* session.set({ ...(yield* session.get), userName: "ada" })
        else yield* session.update((s) => ({ ...s, visits: s.visits + 1 }))
        return yield* HttpServerResponse.json(yield* session.get)
      })
      yield* HttpServer.serveEffect(RenamedSession.middleware(app)).pipe(Effect.provide(RenamedSession.layer()))
      const browser = yield* makeBrowser
      yield* browser.get("/")
      yield* browser.post("/")
      expect(JSON.parse((yield* browser.get("/")).body)).toEqual({ userName: "ada", visits: 2 })
    }).pipe(Effect.provide(Layer.merge(NodeHttpServer.layerTest, Store)), Effect.scoped))
})
