/**
 * The testing kit users get (`SessionTesting`), used as the README shows: an in-process client with a cookie jar,
 * seeded sessions, TestClock expiry, forms and tokens, and the data stored for the client's cookie.
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Redacted, Schema } from "effect"
import { TestClock } from "effect/testing"
import { SessionMiddleware, SessionTesting } from "../src/index.js"

class AppSession extends SessionMiddleware.Tag<AppSession>()("test/KitSession", {
  schema: Schema.Struct({ user: Schema.NullOr(Schema.String), visits: Schema.Number }),
  initial: { user: null, visits: 0 }
}) {}

const app = HttpRouter.toHttpEffect(HttpRouter.addAll([
  HttpRouter.route("GET", "/", Effect.gen(function*() {
    const session = yield* AppSession
    yield* session.update((s) => ({ ...s, visits: s.visits + 1 }))
    const { user, visits } = yield* session.get
    return HttpServerResponse.text(`${user ?? "guest"} ${visits}`)
  })),
  HttpRouter.route("GET", "/form", Effect.flatMap(AppSession, (s) => s.csrfToken).pipe(Effect.map((token) => HttpServerResponse.text(token)))),
  HttpRouter.route("POST", "/login", Effect.gen(function*() {
    const session = yield* AppSession
    const { name } = yield* HttpServerRequest.schemaBodyUrlParams(Schema.Struct({ name: Schema.String }))
    yield* session.regenerate
    yield* session.update((s) => ({ ...s, user: name }))
    return HttpServerResponse.text("ok")
  }))
]))

describe("SessionTesting", () => {
  it.effect("a seeded session, expiring by TestClock", () =>
    Effect.gen(function*() {
      const client = yield* SessionTesting.makeClient(AppSession, yield* app)
      expect(yield* client.cookie).toEqual(Option.none())
      yield* client.seed({ user: "ada", visits: 41 })
      expect((yield* client.get("/")).body).toBe("ada 42")
      expect(yield* client.data).toEqual(Option.some({ user: "ada", visits: 42 }))
      yield* TestClock.adjust("31 minutes")
      expect((yield* client.get("/")).body).toBe("guest 1")
    }).pipe(Effect.provide(SessionTesting.layer(AppSession, { idleTimeout: "30 minutes" }))))

  it.effect("forms and CSRF tokens; the cookie follows a login's new key", () =>
    Effect.gen(function*() {
      const client = yield* SessionTesting.makeClient(AppSession, yield* app)
      const token = (yield* client.get("/form")).body
      const before = yield* client.cookie
      expect((yield* client.post("/login", { form: { name: "ada" } })).status).toBe(403) // no token
      expect((yield* client.post("/login", { form: { name: "ada", _csrf: token } })).status).toBe(200)
      expect(yield* client.cookie).not.toEqual(before)
      expect((yield* client.get("/")).body).toBe("ada 1")
    }).pipe(Effect.provide(SessionTesting.layer(AppSession, { csrfTokens: true }))))

  it.effect("signed cookies: seeded sessions are signed like the middleware's", () =>
    Effect.gen(function*() {
      const client = yield* SessionTesting.makeClient(AppSession, yield* app)
      yield* client.seed({ user: "grace", visits: 0 }, { subject: "grace" })
      expect(Option.getOrThrow(yield* client.cookie)).toMatch(/\./)
      expect((yield* client.get("/")).body).toBe("grace 1")
    }).pipe(Effect.provide(SessionTesting.layer(AppSession, { cookie: { secrets: [Redacted.make("k".repeat(32))] } }))))
})

class Cart extends SessionMiddleware.SealedTag<Cart>()("test/KitCart", {
  schema: Schema.Struct({ user: Schema.NullOr(Schema.String), items: Schema.Number }),
  initial: { user: null, items: 0 }
}) {}

const cartApp = HttpRouter.toHttpEffect(HttpRouter.addAll([
  HttpRouter.route("GET", "/", Effect.gen(function*() {
    const cart = yield* Cart
    yield* cart.update((c) => ({ ...c, items: c.items + 1 }))
    const { items, user } = yield* cart.get
    return HttpServerResponse.text(`${user ?? "guest"} ${items}`)
  })),
  HttpRouter.route("GET", "/form", Effect.flatMap(Cart, (c) => c.csrfToken).pipe(Effect.map((token) => HttpServerResponse.text(token)))),
  HttpRouter.route("POST", "/login", Effect.gen(function*() {
    const cart = yield* Cart
    const { name } = yield* HttpServerRequest.schemaBodyUrlParams(Schema.Struct({ name: Schema.String }))
    yield* cart.regenerate
    yield* cart.update((c) => ({ ...c, user: name }))
    return HttpServerResponse.text("ok")
  }))
]))

describe("SessionTesting, sealed-cookie mode", () => {
  it.effect("a seeded sealed session, opened by data, expiring by TestClock; no store in the layer", () =>
    Effect.gen(function*() {
      const client = yield* SessionTesting.makeSealedClient(Cart, yield* cartApp)
      yield* client.seed({ user: "ada", items: 2 })
      expect(Option.getOrThrow(yield* client.cookie)).toMatch(/^A[A-Za-z0-9_-]{100,}$/)
      expect((yield* client.get("/")).body).toBe("ada 3")
      expect(yield* client.data).toEqual(Option.some({ user: "ada", items: 3 }))
      yield* TestClock.adjust("31 minutes")
      expect(yield* client.data).toEqual(Option.none())
      expect((yield* client.get("/")).body).toBe("guest 1")
    }).pipe(Effect.provide(SessionTesting.layerSealed(Cart, { idleTimeout: "30 minutes" }))))

  it.effect("forms and CSRF tokens; a login reseals the cookie", () =>
    Effect.gen(function*() {
      const client = yield* SessionTesting.makeSealedClient(Cart, yield* cartApp)
      const token = (yield* client.get("/form")).body
      const before = yield* client.cookie
      expect((yield* client.post("/login", { form: { name: "ada" } })).status).toBe(403)
      expect((yield* client.post("/login", { form: { name: "ada", _csrf: token } })).status).toBe(200)
      expect(yield* client.cookie).not.toEqual(before)
      expect((yield* client.get("/")).body).toBe("ada 1")
    }).pipe(Effect.provide(SessionTesting.layerSealed(Cart, { csrfTokens: true, secrets: [Redacted.make("c".repeat(32))] }))))
})
