/**
 * What a user meets when the session's data changes under them: data over the size limit fails in the handler (a
 * typed error it can catch), a schema changed by a deploy keeps sessions (defaults, `migrate`) or fails by choice,
 * and a Secure cookie served over plain HTTP to a real host is warned about, once.
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer, Logger, Schema } from "effect"
import { MemorySessionStore, SessionMiddleware, SessionStore } from "../src/index.js"
import { makeBrowser } from "./support/browser.js"
import { toApp } from "./support/testApp.js"
import { createServer } from "node:http"

const cookieName = "__Host-session"

/**
 * Effect 3's `NodeHttpServer.layerTest`: a server that outlives each app served on it (Effect 4 closes the server
 * when an app's scope ends, unless `disablePreemptiveShutdown`), so a "deploy" serves a new app on it; and an undici
 * client, which sends the `Host` header a request sets (Effect 4's test client is `fetch`, which replaces it).
 */
const testServer = HttpServer.layerTestClient.pipe(
  Layer.provide(Layer.fresh(NodeHttpClient.layerUndici)),
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, disablePreemptiveShutdown: true }))
)

/** A cart, then (after a "deploy") a cart with a currency that has a default, then one whose items changed shape. */
const V1 = Schema.Struct({ user: Schema.NullOr(Schema.String), items: Schema.Array(Schema.String) })
const V2 = Schema.Struct({
  user: Schema.NullOr(Schema.String),
  items: Schema.Array(Schema.String),
  currency: Schema.String.pipe(Schema.withDecodingDefault(Effect.succeed("EUR")))
})
const Item = Schema.Struct({ sku: Schema.String, quantity: Schema.Number })
const V3 = Schema.Struct({ user: Schema.NullOr(Schema.String), items: Schema.Array(Item) })

class Cart1 extends SessionMiddleware.Tag<Cart1>()("test/Cart1", { schema: V1, initial: { user: null, items: [] } }) {}
class Cart2 extends SessionMiddleware.Tag<Cart2>()("test/Cart2", {
  schema: V2,
  initial: { user: null, items: [], currency: "EUR" }
}) {}
class Cart3 extends SessionMiddleware.Tag<Cart3>()("test/Cart3", { schema: V3, initial: { user: null, items: [] } }) {}

/** Serves `tag`'s app: GET / shows the data, POST /fill puts a cart in and logs in. */
type Cart = { readonly user: string | null; readonly items: ReadonlyArray<unknown> }

const serve = <Self, Id extends string, A extends Cart>(
  tag: SessionMiddleware.SessionTag<Self, Id, A, any>,
  options: SessionMiddleware.Options = {},
  fill: ReadonlyArray<unknown> = ["apple"]
) =>
  toApp([
    HttpRouter.route("GET", "/", Effect.flatMap(tag, (s) => s.get).pipe(Effect.flatMap((data) => HttpServerResponse.json(data)))),
    HttpRouter.route("POST", "/fill", Effect.flatMap(tag, (s) => s.update((d) => ({ ...d, user: "ada", items: fill }) as A)).pipe(
      Effect.as(HttpServerResponse.text("ok"))
    )),
    HttpRouter.route("POST", "/huge", Effect.flatMap(tag, (s) => s.update((d) => ({ ...d, items: Array(2000).fill("x".repeat(100)) }) as A)).pipe(
      Effect.as(HttpServerResponse.text("stored?!")),
      Effect.catchTag("SessionTooLarge", (e) => Effect.succeed(HttpServerResponse.text(`too large: ${e.bytes} > ${e.maxBytes}`, { status: 413 })))
    ))
  ]).pipe(
    Effect.flatMap((app) => app.pipe(tag.middleware, HttpServer.serveEffect())),
    Effect.provide(tag.layer(options))
  )

layer(Layer.merge(testServer, MemorySessionStore.layer({ cleanupInterval: 0 })))("session data", (it) => {
  it.effect("data over maxBytes fails in the handler with SessionTooLarge, which it can catch; nothing is stored", () =>
    Effect.gen(function*() {
      yield* serve(Cart1, { maxBytes: 64 * 1024 })
      const browser = yield* makeBrowser
      yield* browser.post("/fill")
      const huge = yield* browser.post("/huge")
      expect(huge.status).toBe(413)
      expect(huge.body).toMatch(/^too large: \d+ > 65536$/)
      expect(JSON.parse((yield* browser.get("/")).body)).toEqual({ user: "ada", items: ["apple"] })
      const bad = yield* Effect.flip(Layer.build(Cart1.layer({ maxBytes: 0 })))
      expect(bad).toMatchObject({ _tag: "InvalidConfig", option: "maxBytes" })
    }))

  describe("a schema changed by a deploy, over live sessions", () => {
    it.effect("a field added with a default keeps every session: the user stays logged in, the cart stays", () =>
      Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* Effect.scoped(Effect.andThen(serve(Cart1), browser.post("/fill")))
        yield* serve(Cart2) // the new deploy
        expect(JSON.parse((yield* browser.get("/")).body)).toEqual({ user: "ada", items: ["apple"], currency: "EUR" })
      }))

    it.effect("without a migration, an undecodable session resets (logged, rate-limited) or fails the request, by choice", () =>
      Effect.gen(function*() {
        const logged: Array<string> = []
        const logger = Logger.layer([Logger.make(({ message }) => void logged.push(String(message)))])
        const browser = yield* makeBrowser
        yield* Effect.scoped(Effect.andThen(serve(Cart1), browser.post("/fill")))
        yield* Effect.scoped(Effect.gen(function*() {
          yield* serve(Cart3, { onUndecodable: "fail" })
          const failed = yield* browser.get("/")
          expect(failed.status).toBe(500)
          expect(failed.setCookie).toEqual([])
        }))
        yield* serve(Cart3).pipe(Effect.provide(logger))
        for (let i = 0; i < 3; i++) expect(JSON.parse((yield* browser.get("/")).body)).toEqual({ user: null, items: [] })
        expect(logged.filter((line) => line.startsWith("ignoring a stored session"))).toHaveLength(1) // not one per request
      }))

    it.effect("a migrate function turns the old shape into the new one: nobody is logged out", () =>
      Effect.gen(function*() {
        const browser = yield* makeBrowser
        yield* Effect.scoped(Effect.andThen(serve(Cart1), browser.post("/fill")))
        const migrate = (stored: unknown) => {
          const old = stored as { user: string | null; items: ReadonlyArray<string> }
          return { ...old, items: old.items.map((sku) => ({ sku, quantity: 1 })) }
        }
        yield* serve(Cart3, { migrate })
        expect(JSON.parse((yield* browser.get("/")).body)).toEqual({ user: "ada", items: [{ sku: "apple", quantity: 1 }] })
      }))
  })

  it.effect("a Secure cookie over plain HTTP to a host other than localhost: one warning saying what to configure", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const logger = Logger.layer([Logger.make(({ message }) => void logged.push(String(message)))])
      yield* serve(Cart1).pipe(Effect.provide(logger))
      const browser = yield* makeBrowser
      for (let i = 0; i < 3; i++) yield* browser.post("/fill", undefined, { headers: { host: "myapp.test:3000" } })
      yield* browser.get("/", undefined, { headers: { host: "localhost:3000" } })
      const warnings = logged.filter((line) => line.includes("plain HTTP"))
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toContain("http://myapp.test:3000")
      expect(warnings[0]).toContain("cookie: { secure: false }")
      expect(yield* Effect.map(SessionStore.SessionStore, () => cookieName)).toBe("__Host-session")
    }))
})
