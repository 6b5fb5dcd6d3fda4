import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { Context, Deferred, Effect, Layer, Option, Ref, Schema } from "effect"
import { createServer } from "node:http"
import { MemorySessionStore, SessionMiddleware, SessionStore } from "../../src/index.js"

export const Data = Schema.Struct({
  user: Schema.NullOr(Schema.String),
  visits: Schema.Number,
  a: Schema.optional(Schema.String),
  b: Schema.optional(Schema.String)
})

/** The session of the test app. Chromium and Node's fetch keep Secure cookies on http://localhost. */
export class TestSession extends SessionMiddleware.Tag<TestSession>()("test/Session", {
  schema: Data,
  initial: { user: null, visits: 0 }
}) {}

const query = (name: string) =>
  Effect.map(HttpServerRequest.ParsedSearchParams, (params) => Option.fromNullishOr(params[name] as string | undefined))

/** Two handlers meet here, so both load the session before either saves it: truly overlapping requests. */
export class Barrier extends Context.Service<Barrier>()("test/Barrier", {
  make: Effect.gen(function*() {
    const arrived = yield* Ref.make(0)
    const open = yield* Deferred.make<void>()
    return {
      wait: (parties: number) =>
        Ref.updateAndGet(arrived, (n) => n + 1).pipe(
          Effect.flatMap((n) => n >= parties ? Deferred.succeed(open, undefined) : Effect.void),
          Effect.andThen(Deferred.await(open))
        )
    }
  })
}) {
  static readonly Default = Layer.effect(this, this.make)
}

/**
 * `NodeHttpServer.layerTest` but for two things: an app served in a scope of its own stops being served when that
 * scope ends, and the server stays up for the next one (on Effect 4 the server shuts down by default; on Effect 3 it
 * never did), so a test can serve one app after another; and the client is undici's, which sends the `Host` header a
 * test sets (fetch replaces it).
 */
export const layerTestServer = HttpServer.layerTestClient.pipe(
  Layer.provide(NodeHttpClient.layerUndici),
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, disablePreemptiveShutdown: true }))
)

/** The routes as an HTTP app (v3's `HttpRouter` was one), in the current scope. */
export const toApp = <const Routes extends ReadonlyArray<HttpRouter.Route<any, any>>>(routes: Routes) =>
  HttpRouter.toHttpEffect(HttpRouter.addAll(routes))

/** The routes the HTTP tests drive. */
export const makeApp = () => {
  const session = TestSession
  const show = Effect.gen(function*() {
    const s = yield* session
    return yield* HttpServerResponse.json({ data: yield* s.get, flashes: yield* s.flashes, isNew: yield* s.isNew })
  })
  return [
    HttpRouter.route("GET", "/", Effect.flatMap(session, (s) => s.update((d) => ({ ...d, visits: d.visits + 1 }))).pipe(Effect.andThen(show))),
    HttpRouter.route("GET", "/peek", show),
    HttpRouter.route("GET", "/plain", HttpServerResponse.text("no session used")),
    HttpRouter.route("POST", "/login", Effect.gen(function*() {
      const s = yield* session
      const name = Option.getOrElse(yield* query("name"), () => "ada")
      yield* s.regenerate
      yield* s.set({ ...(yield* s.get), user: name })
      yield* s.flash("notice", `Welcome, ${name}`)
      if (Option.isSome(yield* query("remember"))) yield* s.rememberMe(true)
      return yield* show
    })),
    HttpRouter.route("POST", "/logout", Effect.gen(function*() {
      const s = yield* session
      yield* s.destroy
      yield* s.flash("notice", "Logged out")
      return HttpServerResponse.text("bye")
    })),
    HttpRouter.route("POST", "/destroy", Effect.flatMap(session, (s) => s.destroy).pipe(Effect.as(HttpServerResponse.text("gone")))),
    HttpRouter.route("GET", "/fail", Effect.gen(function*() {
      const s = yield* session
      yield* s.set({ ...(yield* s.get), user: "written before the failure" })
      return yield* Effect.fail(new Error("handler failed"))
    })),
    HttpRouter.route("POST", "/login-then-fail", Effect.gen(function*() {
      const s = yield* session
      yield* s.regenerate
      yield* s.set({ ...(yield* s.get), user: Option.getOrElse(yield* query("name"), () => "x") })
      return yield* Effect.fail(new Error("the login failed after rotating"))
    })),
    HttpRouter.route("GET", "/overlap", Effect.gen(function*() {
      const s = yield* session
      const barrier = yield* Barrier
      const field = Option.getOrElse(yield* query("field"), () => "a") as "a" | "b"
      const parties = Number(Option.getOrElse(yield* query("parties"), () => "2"))
      yield* s.set({ ...(yield* s.get), [field]: Option.getOrElse(yield* query("value"), () => "x") })
      yield* s.update((d) => ({ ...d, visits: d.visits + 1 }))
      yield* barrier.wait(parties)
      return HttpServerResponse.text("ok")
    })),
    HttpRouter.route("GET", "/guarded", Effect.flatMap(session, (s) => s.get).pipe(
      Effect.as(HttpServerResponse.text("fine")),
      Effect.catchTag("SessionUnavailable", () => Effect.succeed(HttpServerResponse.text("handled: degraded mode", { status: 200 })))
    )),
    HttpRouter.route("POST", "/regenerate", Effect.flatMap(session, (s) => s.regenerate).pipe(Effect.andThen(show))),
    // A user's sessions: log in as a subject, list, revoke, log out everywhere.
    HttpRouter.route("POST", "/login-as", Effect.gen(function*() {
      const s = yield* session
      const name = Option.getOrElse(yield* query("name"), () => "ada")
      const request = yield* HttpServerRequest.HttpServerRequest
      yield* s.regenerate
      yield* s.set({ ...(yield* s.get), user: name })
      yield* s.setSubject(name, { metadata: { userAgent: request.headers["user-agent"] ?? "unknown" } })
      return HttpServerResponse.text("ok")
    }).pipe(Effect.catchTag("InvalidSubject", (e) => Effect.succeed(HttpServerResponse.text(e.message, { status: 400 }))))),
    HttpRouter.route("POST", "/subject-with-huge-metadata", Effect.flatMap(session, (s) =>
      s.setSubject("ada", { metadata: { note: "x".repeat(5_000) } })).pipe(
        Effect.as(HttpServerResponse.text("stored?!")),
        Effect.catchTag("InvalidSubject", (e) => Effect.succeed(HttpServerResponse.text(e.message, { status: 400 })))
      )),
    HttpRouter.route("GET", "/sessions", Effect.flatMap(session, (s) =>
      Effect.flatMap(Effect.all({ subject: s.subject, sessions: s.sessions }), ({ sessions, subject }) =>
        HttpServerResponse.json({ subject: Option.getOrNull(subject), sessions })))),
    HttpRouter.route("POST", "/revoke", Effect.gen(function*() {
      const s = yield* session
      const id = Option.getOrElse(yield* query("id"), () => "")
      return HttpServerResponse.text(String(yield* s.revoke(id)))
    })),
    // Logout as a privilege drop: a new key, the old one ended at once, the user and subject gone.
    HttpRouter.route("POST", "/logout-drop", Effect.gen(function*() {
      const s = yield* session
      yield* s.dropPrivileges
      yield* s.set({ ...(yield* s.get), user: null })
      yield* s.setSubject(null)
      return HttpServerResponse.text("bye")
    })),
    HttpRouter.route("POST", "/remember", Effect.gen(function*() {
      const s = yield* session
      yield* s.rememberMe(Option.getOrElse(yield* query("on"), () => "1") === "1")
      return yield* show
    })),
    // Sets the data the session already holds: nothing to save.
    HttpRouter.route("POST", "/same", Effect.flatMap(session, (s) => Effect.flatMap(s.get, s.set)).pipe(Effect.andThen(show))),
    HttpRouter.route("GET", "/token", Effect.flatMap(session, (s) => s.csrfToken).pipe(Effect.map((t) => HttpServerResponse.text(t)))),
    HttpRouter.route("POST", "/logout-everywhere", Effect.gen(function*() {
      const s = yield* session
      const keepCurrent = Option.isSome(yield* query("keep"))
      return HttpServerResponse.text(String(yield* s.logoutEverywhere({ keepCurrent })))
    }))
  ] as const
}

/** Serves the test app behind the session middleware configured with `options`, in the current scope. */
export const serveApp = (
  options: SessionMiddleware.Options = {},
  outer: <E, R>(app: SessionMiddleware.App<E, R>) => SessionMiddleware.App<E, R> = (app) => app
) =>
  toApp(makeApp()).pipe(
    Effect.flatMap((app) => app.pipe(TestSession.middleware, outer, HttpServer.serveEffect())),
    Effect.provide(TestSession.layer(options))
  )

/** A memory store that counts how often it is asked for a session, to prove that bad cookies never reach it. */
export class StoreCalls extends Context.Service<StoreCalls, Ref.Ref<number>>()("test/StoreCalls", {
  make: Ref.make(0)
}) {
  static readonly Default = Layer.effect(this, this.make)
}

export const CountingMemoryStore = Layer.effect(
  SessionStore.SessionStore,
  Effect.gen(function*() {
    const calls = yield* StoreCalls
    const inner = yield* SessionStore.SessionStore
    const count = <A, E>(effect: Effect.Effect<A, E>) => Effect.andThen(Ref.update(calls, (n) => n + 1), effect)
    return {
      ...inner,
      get: (key) => count(inner.get(key)),
      set: (key, value, options) => count(inner.set(key, value, options)),
      touch: (key, options) => count(inner.touch(key, options)),
      modify: ((key: string, f: (v: string) => string, options?: SessionStore.ModifyOptions) =>
        count(inner.modify(key, f, options ?? {}))) as SessionStore.Service["modify"],
      rotate: ((key: string, f: (v: string) => string, options?: SessionStore.RotateOptions) =>
        count(inner.rotate(key, f, options ?? {}))) as SessionStore.Service["rotate"],
      generate: ((options?: Parameters<SessionStore.Service["generate"]>[0]) =>
        count(inner.generate(options ?? {}))) as SessionStore.Service["generate"],
      setSubject: (key, subject, options) => count(inner.setSubject(key, subject, options)),
      list: (subject, options) => count(inner.list(subject, options)),
      revoke: (id, options) => count(inner.revoke(id, options)),
      revokeSubject: (subject, options) => count(inner.revokeSubject(subject, options)),
      clear: (key) => count(inner.clear(key))
    } satisfies SessionStore.Service
  })
).pipe(Layer.provide(MemorySessionStore.layer({ cleanupInterval: 0 })), Layer.provideMerge(StoreCalls.Default))
