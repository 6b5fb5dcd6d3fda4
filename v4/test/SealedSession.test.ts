/**
 * The sealed-cookie mode (`SessionMiddleware.SealedTag`) over real HTTP: the session sealed into its cookie and
 * nowhere else. What the server-side mode's tests show and applies here (round trips, flash, timeouts by TestClock,
 * remember-me, renewal, rotation, destroy, CSRF tokens, 5xx and 4xx saves, bad cookies never a 500, the three
 * integrations), what only this mode has (tampering, truncation, foreign and rotated secrets, replay after expiry,
 * the cookie's size budget), and what it cannot do, asserted as documented (a copied cookie outlives logout, the
 * last overlapping response wins). The store conformance suite does not apply: there is no store.
 */
import { HttpClient, HttpClientRequest, HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Config, ConfigProvider, Context, Effect, Layer, Logger, Metric, Redacted, Schema } from "effect"
import { TestClock } from "effect/testing"
import { app as cartApp, CartLive as CartSettings } from "../examples/sealed.js"
import * as Observability from "../src/internal/observability.js"
import * as SealedCookie from "../src/internal/sealedCookie.js"
import { SessionMiddleware, SessionStore } from "../src/index.js"
import { makeBrowser } from "./support/browser.js"
import { makeSealedApp, SealedTestSession, secret, serveSealed } from "./support/sealedApp.js"
import { Barrier, layerTestServer, toApp } from "./support/testApp.js"


const cookieName = "__Host-session"
const provide = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(Layer.merge(layerTestServer, Barrier.Default)), Effect.scoped)
const json = (reply: { readonly body: string }) => JSON.parse(reply.body)
const line = (reply: { readonly setCookie: ReadonlyArray<string> }) => reply.setCookie.find((l) => l.startsWith(`${cookieName}=`))
const counter = (metric: Metric.Counter<number>, ...tags: ReadonlyArray<readonly [string, string]>) => {
  let tagged = metric
  for (const [key, value] of tags) tagged = Metric.withAttributes(tagged, { [key]: value })
  return Effect.map(Metric.value(tagged), (state) => state.count)
}
const rejected = (reason: string) => counter(Observability.cookiesRejected, ["reason", reason])

/** `value` with its character at `i` replaced by another base64url character. */
const changedAt = (value: string, i: number) => {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  return value.slice(0, i) + alphabet[(alphabet.indexOf(value[i]!) + 1 + (i % 63)) % 64]! + value.slice(i + 1)
}

/** A cookie sealed directly with `secretText` for `name`, holding the given envelope and expiry. */
const sealedBy = (secretText: string, envelope: unknown, expiresAt: number, name = cookieName) =>
  SealedCookie.seal(SealedCookie.deriveKeys([Buffer.from(secretText)]), name, SealedCookie.payload(expiresAt, JSON.stringify(envelope)))

describe("sealed-cookie sessions over HTTP", () => {
  it.effect("round trip: the first write seals the session into a hardened cookie; the next request opens it", () =>
    Effect.gen(function*() {
      yield* serveSealed()
      const browser = yield* makeBrowser
      const passerBy = yield* browser.get("/peek")
      expect(json(passerBy)).toMatchObject({ isNew: true, data: { user: null, visits: 0 } })
      expect(passerBy.setCookie).toEqual([])
      expect(passerBy.headers["vary"]).toBe("Cookie")

      const first = yield* browser.get("/")
      expect(line(first)).toMatch(/^__Host-session=[A-Za-z0-9_-]{100,}; Path=\/; HttpOnly; Secure; SameSite=Lax$/)
      expect(first.headers["cache-control"]).toBe("private, no-store")
      const sealed = browser.jar.get(cookieName)!
      expect(Buffer.from(sealed, "base64url").toString("latin1")).not.toMatch(/visits|user/) // encrypted, not encoded

      const second = yield* browser.get("/")
      expect(json(second)).toMatchObject({ isNew: false, data: { visits: 2 } })
      expect(browser.jar.get(cookieName)).not.toBe(sealed) // every change is a new seal
      const read = yield* browser.get("/peek")
      expect(json(read)).toMatchObject({ isNew: false, data: { visits: 2 } })
      expect(read.setCookie).toEqual([]) // nothing changed, no renewal due: no new cookie
      expect(read.headers["cache-control"]).toBe("private")
      expect((yield* browser.get("/store")).body).toBe("no store")
    }).pipe(provide))

  it.effect("a tampered, truncated, duplicated or foreign cookie is no session, counted by reason, never a 500", () =>
    Effect.gen(function*() {
      yield* serveSealed()
      const browser = yield* makeBrowser
      yield* browser.get("/")
      const value = browser.jar.get(cookieName)!
      const reasons = ["malformed", "forged", "duplicated"] as const
      const before = yield* Effect.forEach(reasons, rejected)
      const attempts = [
        ...[0, 1, 2, 13, 20, Math.floor(value.length / 2), value.length - 23, value.length - 2, value.length - 1]
          .map((i) => changedAt(value, i)),
        ...[1, 17, 39, Math.floor(value.length / 2), value.length - 1].map((length) => value.slice(0, length)),
        value + "AAAA",
        // Sealed under another secret; sealed under this one for another cookie name.
        sealedBy("o".repeat(32), { v: 1, d: { user: "mallory", visits: 0 }, f: {}, c: 0, r: false }, 1e12),
        sealedBy("s".repeat(32), { v: 1, d: { user: "mallory", visits: 0 }, f: {}, c: 0, r: false }, 1e12, "other")
      ]
      for (const attempt of attempts) {
        const reply = yield* browser.get("/peek", `${cookieName}=${attempt}`)
        expect(reply.status).toBe(200)
        expect(json(reply)).toMatchObject({ isNew: true, data: { user: null, visits: 0 } })
        expect(reply.setCookie).toEqual([])
      }
      expect(json(yield* browser.get("/peek", `${cookieName}=${value}; ${cookieName}=${value}`)).isNew).toBe(true)
      const after = yield* Effect.forEach(reasons, rejected)
      expect(after[0]! - before[0]! + after[1]! - before[1]!).toBe(attempts.length)
      expect(after[1]! - before[1]!).toBeGreaterThanOrEqual(10) // authentication failures, not parse errors
      expect(after[2]! - before[2]!).toBe(1)
      expect(json(yield* browser.get("/peek")).data.visits).toBe(1) // the real cookie still opens
    }).pipe(provide))

  it.effect("secrets rotate: after a new one is prepended the old still opens; dropping it ends its sessions", () =>
    Effect.gen(function*() {
      const browser = yield* makeBrowser
      yield* Effect.scoped(Effect.andThen(serveSealed({ secrets: [secret("o")] }), browser.get("/")))
      const sealedUnderOld = browser.jar.get(cookieName)!
      yield* Effect.scoped(Effect.gen(function*() {
        yield* serveSealed({ secrets: [secret("n"), secret("o")] })
        expect(json(yield* browser.get("/peek")).data.visits).toBe(1)
        yield* browser.get("/") // resealed under the new first secret
      }))
      yield* serveSealed({ secrets: [secret("n")] })
      expect(json(yield* browser.get("/peek")).data.visits).toBe(2)
      const other = yield* makeBrowser
      expect(json(yield* other.get("/peek", `${cookieName}=${sealedUnderOld}`)).isNew).toBe(true)
    }).pipe(provide))

  it.effect("idle timeout from the sealed expiry: a copy replayed after it is refused while the browser's session lives on", () =>
    Effect.gen(function*() {
      yield* serveSealed({ idleTimeout: "10 minutes", renewalThreshold: 0 })
      const browser = yield* makeBrowser
      const replayer = yield* makeBrowser
      yield* browser.get("/")
      const copy = browser.jar.get(cookieName)!
      for (let i = 0; i < 3; i++) {
        yield* TestClock.adjust("6 minutes")
        expect(json(yield* browser.get("/peek")).isNew).toBe(false) // each renewal reseals
      }
      const expired = yield* rejected("expired")
      expect(json(yield* replayer.get("/peek", `${cookieName}=${copy}`)).isNew).toBe(true)
      expect(yield* rejected("expired")).toBe(expired + 1)
      const latest = `${cookieName}=${browser.jar.get(cookieName)!}`
      yield* TestClock.adjust("10 minutes")
      expect(json(yield* replayer.get("/peek", latest)).isNew).toBe(false) // exactly at its expiry: still valid
      yield* TestClock.adjust(1)
      expect(json(yield* replayer.get("/peek", latest)).isNew).toBe(true)
      expect(json(yield* browser.get("/peek")).isNew).toBe(true)
    }).pipe(provide))

  it.effect("absolute timeout from the sealed creation time, even for a cookie sealed with a later expiry", () =>
    Effect.gen(function*() {
      yield* Effect.scoped(Effect.gen(function*() {
        yield* serveSealed({ idleTimeout: "30 minutes", absoluteTimeout: "1 hour", renewalThreshold: 0 })
        const browser = yield* makeBrowser
        yield* browser.get("/")
        for (const minutes of [20, 20, 20]) {
          yield* TestClock.adjust(`${minutes} minutes`)
          expect(json(yield* browser.get("/peek")).isNew).toBe(false)
        }
        yield* TestClock.adjust(1)
        expect(json(yield* browser.get("/peek")).isNew).toBe(true)
      }))
      // A cookie sealed to expire in a day; a deploy shortens the absolute timeout to an hour: it ends at the hour.
      const browser = yield* makeBrowser
      yield* Effect.scoped(Effect.andThen(serveSealed({ idleTimeout: "1 day", absoluteTimeout: "1 day" }), browser.get("/")))
      yield* serveSealed({ idleTimeout: "1 day", absoluteTimeout: "1 hour" })
      yield* TestClock.adjust("59 minutes")
      expect(json(yield* browser.get("/peek")).isNew).toBe(false)
      const expired = yield* rejected("expired")
      yield* TestClock.adjust("2 minutes")
      expect(json(yield* browser.get("/peek")).isNew).toBe(true)
      expect(yield* rejected("expired")).toBe(expired + 1)
    }).pipe(provide))

  it.effect("flash messages are readable on the next request only; a 4xx saves, a 5xx saves nothing", () =>
    Effect.gen(function*() {
      yield* serveSealed()
      const browser = yield* makeBrowser
      yield* browser.post("/login?name=grace")
      const next = yield* browser.get("/peek")
      expect(json(next).flashes).toEqual({ notice: "Welcome, grace" })
      expect(line(next)).toBeDefined() // consumed: resealed without it
      expect(json(yield* browser.get("/peek")).flashes).toEqual({})

      expect((yield* browser.post("/bad-request")).status).toBe(400)
      expect(json(yield* browser.get("/peek")).flashes).toEqual({ error: "wrong password" })

      const failed = yield* browser.get("/fail")
      expect(failed.status).toBe(500)
      expect(failed.setCookie).toEqual([])
      expect(json(yield* browser.get("/peek")).data.user).toBe("grace")
    }).pipe(provide))

  it.effect("regenerate reseals and restarts the absolute timeout; the cookie from before still opens as it was", () =>
    Effect.gen(function*() {
      yield* serveSealed({ idleTimeout: "1 hour", absoluteTimeout: "12 hours" })
      const browser = yield* makeBrowser
      yield* browser.get("/") // an anonymous session
      for (let i = 0; i < 23; i++) {
        yield* TestClock.adjust("30 minutes")
        yield* browser.get("/") // 11 h 30 min old at the end
      }
      yield* TestClock.adjust("29 minutes")
      const planted = browser.jar.get(cookieName)!
      const rotated = yield* counter(Observability.sessionsRotated)
      yield* browser.post("/login?name=ada")
      expect(browser.jar.get(cookieName)).not.toBe(planted)
      expect(yield* counter(Observability.sessionsRotated)).toBe(rotated + 1)
      // Fixation here: a planted cookie never becomes the logged-in session (that lives only in the new cookie);
      // it opens, until its own sealed expiry, with what it held.
      const attacker = yield* makeBrowser
      expect(json(yield* attacker.get("/peek", `${cookieName}=${planted}`))).toMatchObject({ isNew: false, data: { user: null } })
      yield* TestClock.adjust("50 minutes") // past the anonymous session's 12 hours
      expect(json(yield* browser.get("/peek"))).toMatchObject({ isNew: false, data: { user: "ada" } })
    }).pipe(provide))

  it.effect("logout (dropPrivileges) and destroy replace or expire the cookie; a copy of the logged-in one opens until its sealed expiry", () =>
    Effect.gen(function*() {
      yield* serveSealed({ idleTimeout: "10 minutes" })
      const browser = yield* makeBrowser
      const thief = yield* makeBrowser
      yield* browser.post("/login?name=ada")
      const loggedIn = browser.jar.get(cookieName)!
      yield* browser.post("/logout")
      expect(json(yield* browser.get("/peek"))).toMatchObject({ data: { user: null }, flashes: { notice: "Logged out" } })
      // Documented: nothing can revoke a sealed cookie. Its copy is logged in until its sealed expiry.
      expect(json(yield* thief.get("/peek", `${cookieName}=${loggedIn}`)).data.user).toBe("ada")
      yield* TestClock.adjust("10 minutes")
      yield* TestClock.adjust(1)
      expect(json(yield* thief.get("/peek", `${cookieName}=${loggedIn}`)).isNew).toBe(true)

      yield* browser.post("/login?name=ada")
      const destroyed = yield* counter(Observability.sessionsDestroyed)
      const gone = yield* browser.post("/destroy")
      expect(line(gone)).toMatch(/^__Host-session=; Max-Age=0; Path=\/; Expires=Thu, 01 Jan 1970/)
      expect(browser.jar.has(cookieName)).toBe(false)
      expect(yield* counter(Observability.sessionsDestroyed)).toBe(destroyed + 1)
      yield* browser.post("/login?name=ada")
      yield* browser.post("/destroy-then-flash")
      expect(json(yield* browser.get("/peek"))).toMatchObject({ data: { user: null, visits: 0 }, flashes: { notice: "Start again" } })
    }).pipe(provide))

  it.effect("CSRF tokens: a state-changing request without the session's token is refused; the token changes at login", () =>
    Effect.gen(function*() {
      yield* serveSealed({ csrfTokens: true })
      const browser = yield* makeBrowser
      const token = (yield* browser.get("/token")).body
      expect(token).toMatch(/^[A-Za-z0-9_-]{86}$/)
      expect((yield* browser.get("/token")).body).not.toBe(token)
      const refused = yield* browser.post("/login?name=mallory")
      expect(refused.status).toBe(403)
      expect(refused.setCookie).toEqual([])
      const other = yield* makeBrowser
      yield* other.get("/token")
      expect((yield* other.post("/login?name=mallory", undefined, { headers: { "x-csrf-token": token } })).status).toBe(403)
      expect((yield* browser.post("/login?name=ada", undefined, { headers: { "x-csrf-token": token } })).status).toBe(200)
      expect((yield* browser.post("/remember", undefined, { headers: { "x-csrf-token": token } })).status).toBe(403)
      const fresh = (yield* browser.get("/token")).body
      expect((yield* browser.post("/remember", undefined, { form: { _csrf: fresh } })).status).toBe(200)
    }).pipe(provide))

  it.effect("remember-me: a persistent cookie and the remembered timeouts; rememberMe(false) a browser-session cookie", () =>
    Effect.gen(function*() {
      yield* serveSealed()
      const browser = yield* makeBrowser
      const login = yield* browser.post("/login?name=ada&remember=1")
      expect(line(login)).toMatch(/; Max-Age=604800;/)
      yield* TestClock.adjust("2 hours") // past the 30 minutes of an ordinary session
      expect(json(yield* browser.get("/peek")).data.user).toBe("ada")
      const forgotten = yield* browser.post("/remember?on=0")
      expect(line(forgotten)).toBeDefined()
      expect(line(forgotten)).not.toMatch(/Max-Age|Expires/)
      yield* TestClock.adjust("31 minutes")
      expect(json(yield* browser.get("/peek")).isNew).toBe(true)
    }).pipe(provide))

  it.effect("renewal threshold: a read-only request reseals only once the threshold has passed", () =>
    Effect.gen(function*() {
      yield* serveSealed({ idleTimeout: "10 minutes", renewalThreshold: 0.5 })
      const browser = yield* makeBrowser
      yield* browser.get("/")
      yield* TestClock.adjust("4 minutes")
      expect((yield* browser.get("/peek")).setCookie).toEqual([])
      yield* TestClock.adjust("2 minutes")
      expect(line(yield* browser.get("/peek"))).toBeDefined()
      yield* TestClock.adjust("9 minutes") // 15 minutes after the first request, 9 after the renewal
      expect(json(yield* browser.get("/peek")).isNew).toBe(false)
    }).pipe(provide))

  it.effect("size: a change that would take the Set-Cookie line past 4096 bytes fails in the handler and changes nothing", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-01-01T00:00:00Z")) // timestamps of today's length
      yield* serveSealed()
      const browser = yield* makeBrowser
      yield* browser.get("/")
      let fits = 0
      let over = 4096
      while (over - fits > 1) {
        const mid = Math.floor((fits + over) / 2)
        if ((yield* browser.post(`/note?bytes=${mid}`)).status === 200) fits = mid
        else over = mid
      }
      yield* browser.post("/note?bytes=0")
      const largest = yield* browser.post(`/note?bytes=${fits}`)
      const setCookie = line(largest)!
      expect(setCookie.length).toBeLessThanOrEqual(4096)
      expect(setCookie.length).toBeGreaterThan(4096 - 100) // room kept for a CSRF secret and a Max-Age
      const dataBytes = Buffer.byteLength(JSON.stringify(json(largest).data))
      // The budget docs/design.md states: with the default cookie attributes, 2,878 bytes of data as encoded JSON.
      expect(dataBytes).toBe(2_878)

      const sealed = browser.jar.get(cookieName)!
      const refused = yield* browser.post(`/note?bytes=${fits + 1}`)
      expect(refused.status).toBe(413)
      expect(json(refused).tooLarge).toMatchObject({ maxBytes: 4096, limit: "cookie" })
      expect(json(refused).tooLarge.bytes).toBeGreaterThan(4096)
      expect(refused.setCookie).toEqual([])
      const uncaught = yield* browser.post(`/note-uncaught?bytes=${fits + 1}`)
      expect(uncaught.status).toBe(413)
      expect(uncaught.body).toContain("sealed session cookie")
      expect(uncaught.setCookie).toEqual([])
      expect(browser.jar.get(cookieName)).toBe(sealed)
      expect(json(yield* browser.get("/peek")).data.note).toHaveLength(fits)

      // What a request may add later was kept free: a CSRF secret, remember-me's Max-Age.
      yield* browser.get("/token")
      const remembered = yield* browser.post("/remember?on=1")
      expect(line(remembered)).toMatch(/Max-Age=/)
      expect(line(remembered)!.length).toBeLessThanOrEqual(4096)
      expect(line(remembered)!.length).toBeGreaterThan(4096 - 4) // within a base64 quantum of the limit
      const flash = yield* browser.post("/flash?bytes=10")
      expect(flash.status).toBe(413)
      expect(json(yield* browser.get("/peek"))).toMatchObject({ flashes: {}, data: { user: null } })
    }).pipe(provide))

  it.effect("overlapping requests: the last response's cookie wins and the other's changes are lost (documented)", () =>
    Effect.gen(function*() {
      yield* serveSealed()
      const browser = yield* makeBrowser
      yield* browser.get("/")
      const replies = yield* Effect.all([
        browser.get("/overlap?field=a&value=from-a"),
        browser.get("/overlap?field=b&value=from-b")
      ], { concurrency: 2 })
      const kept = browser.jar.get(cookieName)!
      const { data } = json(yield* browser.get("/peek"))
      expect([data.a, data.b].filter((field) => field !== undefined)).toHaveLength(1)
      expect(data.visits).toBe(2) // two increments were made; one survives
      // The browser kept one response's cookie; it holds that request's change and nothing of the other's.
      const winner = replies.find((reply) => line(reply)!.startsWith(`${cookieName}=${kept};`))!
      const loser = replies.find((reply) => reply !== winner)!
      expect(data[winner.body]).toBe(`from-${winner.body}`)
      expect(data[loser.body]).toBeUndefined()
    }).pipe(provide))

  it.effect("a sealed cookie whose data no longer decodes is no session (logged without data or secret), never a 500", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      yield* serveSealed().pipe(
        Effect.provide(Logger.layer([Logger.make(({ message }) => logged.push(String(message)))]))
      )
      const now = yield* Clock.currentTimeMillis
      const browser = yield* makeBrowser
      const stale = sealedBy("s".repeat(32), { v: 1, d: { user: 42, visits: "many" }, f: {}, c: now, r: false }, now + 60_000)
      const reply = yield* browser.get("/peek", `${cookieName}=${stale}`)
      expect(reply.status).toBe(200)
      expect(json(reply)).toMatchObject({ isNew: true, data: { user: null } })
      expect(logged).toContain("ignoring a stored session: data does not decode with the schema at user")
      expect(logged.join("\n")).not.toMatch(/many|sssss/)
    }).pipe(provide))

  it.effect("no store anywhere: the layer is the settings alone, and nothing a handler can reach is a store", () =>
    Effect.gen(function*() {
      type Needs = Effect.Services<ReturnType<typeof serveSealed>>
      const noStore: [Extract<Needs | Layer.Services<typeof SealedTestSession.apiLayer>, SessionStore.SessionStore>] extends [never] ? true
        : false = true
      expect(noStore).toBe(true)
      const context = yield* Layer.build(SealedTestSession.layer({ secrets: [secret("s")] }))
      expect(Context.getOption(context, SessionStore.SessionStore)._tag).toBe("None")
      // Effect 4 adds its own memo map to every context a layer builds: not a service of the layer's.
      expect([...Context.omit(Layer.CurrentMemoMap)(context).mapUnsafe.keys()]).toEqual(["test/SealedSession/Settings"])
      yield* serveSealed()
      expect((yield* (yield* makeBrowser).get("/store")).body).toBe("no store")
    }).pipe(provide))

  it.effect("the handlers' view has no member a cookie cannot honour: by type, and at run time", () =>
    Effect.gen(function*() {
      // Exactly these members of the server-side view are missing (the record must name each, and nothing more).
      type Missing = Exclude<keyof SessionMiddleware.CurrentSession<unknown>, keyof SessionMiddleware.SealedSession<unknown>>
      const missing: Record<Missing, true> = {
        sessions: true,
        revoke: true,
        logoutEverywhere: true,
        subject: true,
        setSubject: true,
        isRotated: true
      }
      const seen: Array<string> = []
      yield* HttpServer.serveEffect(SealedTestSession.middleware(Effect.gen(function*() {
        const session = yield* SealedTestSession
        seen.push(...Object.keys(missing).filter((member) => member in session))
        return HttpServerResponse.text("ok")
      }))).pipe(Effect.provide(SealedTestSession.layer({ secrets: [secret("s")] })))
      expect((yield* (yield* makeBrowser).get("/")).body).toBe("ok")
      expect(seen).toEqual([])
    }).pipe(provide))

  it.effect("layerConfig reads the options, secrets included, through Config", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromEnv({ env: { SESSION_SECRETS: `${"n".repeat(32)},${"s".repeat(32)}` } })
      const settings = SealedTestSession.layerConfig({
        secrets: Config.Array(Schema.Redacted(Schema.String), "SESSION_SECRETS"),
        idleTimeout: "5 minutes"
      })
      yield* toApp(makeSealedApp()).pipe(
        Effect.flatMap((app) => app.pipe(SealedTestSession.middleware, HttpServer.serveEffect())),
        Effect.provide(settings),
        Effect.provideService(ConfigProvider.ConfigProvider, provider)
      )
      const browser = yield* makeBrowser
      const sealedUnderSecond = sealedBy("s".repeat(32), { v: 1, d: { user: "ada", visits: 1 }, f: {}, c: 0, r: false }, 60_000)
      expect(json(yield* browser.get("/peek", `${cookieName}=${sealedUnderSecond}`)).data.user).toBe("ada")
      yield* TestClock.adjust("6 minutes")
      yield* browser.get("/")
      yield* TestClock.adjust("6 minutes")
      expect(json(yield* browser.get("/peek")).isNew).toBe(true) // the 5 minutes read from the options
    }).pipe(provide))

  it.effect("bad options and secrets are InvalidConfig when the layer is built; the message shows no secret", () =>
    Effect.gen(function*() {
      for (const [option, options] of [
        ["secrets", { secrets: [] }],
        ["secrets", {}],
        ["secrets", { secrets: [Redacted.make("short-secret-of-31-bytes-......")] }],
        ["secrets", { secrets: ["a plain string that is long enough to be a secret"] }],
        ["cookie", { secrets: [secret("s")], cookie: { name: "__Host-session", path: "/app" } }],
        ["idleTimeout", { secrets: [secret("s")], idleTimeout: 0 }]
      ] as const) {
        const error = yield* Effect.flip(Layer.build(SealedTestSession.layer(options as never)))
        expect(error).toMatchObject({ _tag: "InvalidConfig", option })
        expect(error.message).not.toMatch(/short-secret|plain string/)
      }
    }).pipe(Effect.scoped))
})

describe("sealed-cookie sessions in the integrations", () => {
  class Cart extends HttpApiGroup.make("cart")
    .add(HttpApiEndpoint.post("count", "/count", { success: Schema.Number }))
    .add(HttpApiEndpoint.post("fill", "/fill", { success: Schema.Number }))
    .middleware(SealedTestSession.Api)
  {}
  class Api extends HttpApi.make("sealed").add(Cart) {}
  const CartLive = HttpApiBuilder.group(Api, "cart", (handlers) =>
    handlers
      .handle("count", () =>
        Effect.gen(function*() {
          const session = yield* SealedTestSession
          yield* session.update((s) => ({ ...s, visits: s.visits + 1 }))
          return (yield* session.get).visits
        }))
      .handle("fill", () =>
        Effect.flatMap(SealedTestSession, (session) => session.update((s) => ({ ...s, note: "x".repeat(5_000) }))).pipe(Effect.as(0))))

  it.effect("HttpApi: the group's handlers get the session; SessionTooLarge is a declared 413, and no 503 or 409 is", () =>
    Effect.gen(function*() {
      yield* Layer.build(HttpRouter.serve(
        HttpApiBuilder.layer(Api).pipe(Layer.provide(CartLive), Layer.provide(SealedTestSession.apiLayer)),
        { disableLogger: true, disableListenLog: true }
      ).pipe(Layer.provide(SealedTestSession.layer({ secrets: [secret("s")] }))))
      const browser = yield* makeBrowser
      expect((yield* browser.post("/count")).body).toBe("1")
      expect((yield* browser.post("/count")).body).toBe("2")
      const full = yield* browser.post("/fill")
      expect(full.status).toBe(413)
      expect(json(full)).toMatchObject({ _tag: "SessionTooLarge", maxBytes: 4096, limit: "cookie" })
      expect((yield* browser.post("/count")).body).toBe("3")
      const responses = Object.keys(OpenApi.fromApi(Api).paths["/count"]!.post!.responses)
      expect(responses).toEqual(expect.arrayContaining(["413", "403"]))
      expect(responses).not.toContain("503")
      expect(responses).not.toContain("409")
    }).pipe(Effect.provide(NodeHttpServer.layerTest), Effect.scoped))

  it.effect("HttpLayerRouter: routes given the router middleware reach the session; it is kept and destroyed", () =>
    Effect.gen(function*() {
      const Routes = HttpRouter.addAll([
        HttpRouter.route("GET", "/", Effect.gen(function*() {
          const session = yield* SealedTestSession
          yield* session.update((s) => ({ ...s, visits: s.visits + 1 }))
          return HttpServerResponse.text(`visits: ${(yield* session.get).visits}`)
        })),
        HttpRouter.route("POST", "/logout", Effect.flatMap(SealedTestSession, (s) => s.destroy).pipe(
          Effect.as(HttpServerResponse.text("bye"))
        ))
      ]).pipe(Layer.provide(SealedTestSession.routerMiddleware.layer))
      yield* Layer.build(HttpRouter.serve(Routes, { disableLogger: true, disableListenLog: true }).pipe(
        Layer.provide(SealedTestSession.layer({ secrets: [secret("s")] }))
      ))
      const browser = yield* makeBrowser
      expect((yield* browser.get("/")).body).toBe("visits: 1")
      expect((yield* browser.get("/")).body).toBe("visits: 2")
      yield* browser.post("/logout")
      expect(browser.jar.has(cookieName)).toBe(false)
      expect((yield* browser.get("/")).body).toBe("visits: 1")
    }).pipe(Effect.provide(NodeHttpServer.layerTest), Effect.scoped))

  it.effect("the example (examples/sealed.ts): a cart in the cookie, refused when full, emptied", () =>
    Effect.gen(function*() {
      yield* Layer.build(HttpRouter.serve(cartApp, { disableLogger: true, disableListenLog: true }).pipe(
        Layer.provide(CartSettings),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { SESSION_SECRETS: "e".repeat(32) } })))
      ))
      const browser = yield* makeBrowser
      yield* browser.post("/add/book")
      expect((yield* browser.get("/")).body).toBe("1 items: book\n")
      let added = 1
      let reply = yield* browser.post(`/add/${"x".repeat(100)}`)
      while (reply.status === 200) {
        added++
        reply = yield* browser.post(`/add/${"x".repeat(100)}`)
      }
      expect(reply.status).toBe(413)
      expect(reply.body).toBe("your cart is full\n")
      expect(added).toBeGreaterThan(20)
      expect((yield* browser.get("/")).body).toMatch(new RegExp(`^${added} items`))
      yield* browser.post("/empty")
      expect((yield* browser.get("/")).body).toBe("0 items: \n")
    }).pipe(provide))

  it.effect("an HttpClient sees one Set-Cookie per response, never a second session cookie", () =>
    Effect.gen(function*() {
      yield* serveSealed()
      const client = yield* HttpClient.HttpClient
      const response = yield* client.execute(HttpClientRequest.get("/"))
      expect(([] as Array<string>).concat(response.headers["set-cookie"] ?? [])).toHaveLength(1)
    }).pipe(provide))
})
