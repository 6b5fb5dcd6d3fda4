/**
 * Testing handlers that use a session, in-process (no server, no port): a client that sends requests through the
 * session middleware and keeps its cookie like a browser, sessions seeded with given data, and expiry driven by
 * `TestClock` (the store and the middleware read Effect's `Clock`). The store is the memory store with its cleanup
 * fiber off, so `TestClock.adjust` stays fast. A sealed-cookie session (`SessionMiddleware.SealedTag`) is tested the
 * same way with `layerSealed` and `makeSealedClient` (no store: `seed` seals, `data` opens the client's cookie).
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 * import { it, expect } from "@effect/vitest"
 * import { Effect, Schema } from "effect"
 * import { TestClock } from "effect/testing"
 * import { SessionMiddleware, SessionTesting } from "effect-session"
 *
 * class AppSession extends SessionMiddleware.Tag<AppSession>()("AppSession", {
 *   schema: Schema.Struct({ user: Schema.NullOr(Schema.String) }),
 *   initial: { user: null }
 * }) {}
 * const app = HttpRouter.toHttpEffect(HttpRouter.addAll([
 *   HttpRouter.route("GET", "/", Effect.flatMap(AppSession, (s) => s.get).pipe(Effect.map((d) => HttpServerResponse.text(d.user ?? "guest"))))
 * ]))
 *
 * it.effect("a logged-in user is logged out after 30 idle minutes", () =>
 *   Effect.gen(function* () {
 *     const client = yield* SessionTesting.makeClient(AppSession, yield* app)
 *     yield* client.seed({ user: "ada" })
 *     expect((yield* client.get("/")).body).toBe("ada")
 *     yield* TestClock.adjust("31 minutes")
 *     expect((yield* client.get("/")).body).toBe("guest")
 *   }).pipe(Effect.provide(SessionTesting.layer(AppSession)))
 * )
 * ```
 *
 * @since 0.3.0
 */
import { Cookies, HttpEffect, HttpServerRequest, HttpServerResponse } from "effect/http"
import { Clock, Context, DateTime, Deferred, Effect, Layer, Option, Redacted, Result } from "effect"
import * as Envelope from "./internal/envelope.js"
import type { Options } from "./internal/middlewareModel.js"
import type { Resolved } from "./internal/middlewareSettings.js"
import * as Renewal from "./internal/renewal.js"
import { opened, type SealedResolved, sealed } from "./internal/sealedSession.js"
import * as SessionCookie from "./internal/sessionCookie.js"
import * as MemorySessionStore from "./MemorySessionStore.js"
import type { InvalidConfig, InvalidExpiry, InvalidSubject, InvalidValue, SessionStoreError } from "./SessionError.js"
import type * as SessionMiddleware from "./SessionMiddleware.js"
import * as SessionStore from "./SessionStore.js"

/**
 * What a test reads of a response.
 *
 * @since 0.3.0
 * @category models
 */
export interface Reply {
  readonly status: number
  readonly body: string
  readonly headers: Readonly<Record<string, string>>
  /** The `Set-Cookie` lines of the response. */
  readonly setCookie: ReadonlyArray<string>
}

/**
 * A request's extras: headers, and a urlencoded form or a JSON body.
 *
 * @since 0.3.0
 * @category models
 */
export interface RequestInit {
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly form?: Readonly<Record<string, string>> | undefined
  readonly json?: unknown
}

/**
 * A browser-like client of an app behind a session's middleware.
 *
 * @since 0.3.0
 * @category models
 */
export interface Client<A> {
  readonly get: (path: string, init?: RequestInit) => Effect.Effect<Reply>
  readonly post: (path: string, init?: RequestInit) => Effect.Effect<Reply>
  readonly request: (method: string, path: string, init?: RequestInit) => Effect.Effect<Reply>
  /**
   * Starts a session holding `data` (owned by `subject`, if given) and takes its cookie, as if the client had
   * logged in: the next request arrives with it.
   */
  readonly seed: (
    data: A,
    options?: { readonly subject?: string | undefined; readonly remember?: boolean | undefined }
  ) => Effect.Effect<void, InvalidValue | InvalidExpiry | InvalidSubject | SessionStoreError>
  /** The data stored for the client's cookie, if it has a live session. */
  readonly data: Effect.Effect<Option.Option<A>, SessionStoreError>
  /** The session cookie the client holds (its value), if any. */
  readonly cookie: Effect.Effect<Option.Option<string>>
}

/**
 * A browser-like client of an app behind a sealed-cookie session's middleware (`SessionMiddleware.SealedTag`).
 *
 * @since 0.3.0
 * @category models
 */
export interface SealedClient<A> {
  readonly get: (path: string, init?: RequestInit) => Effect.Effect<Reply>
  readonly post: (path: string, init?: RequestInit) => Effect.Effect<Reply>
  readonly request: (method: string, path: string, init?: RequestInit) => Effect.Effect<Reply>
  /** Seals a session holding `data` into the client's cookie, as if it had logged in. */
  readonly seed: (data: A, options?: { readonly remember?: boolean | undefined }) => Effect.Effect<void>
  /** The data sealed in the client's cookie, if it opens to a live session (under the layer's secrets). */
  readonly data: Effect.Effect<Option.Option<A>>
  /** The session cookie the client holds (its sealed value), if any. */
  readonly cookie: Effect.Effect<Option.Option<string>>
}

/**
 * A sealed-cookie session's settings for tests: its `layer` with `options`, sealing under a fixed test secret
 * unless `secrets` are given. No store: the mode has none.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerSealed = <Self, Id extends string, A, I>(
  tag: SessionMiddleware.SealedSessionTag<Self, Id, A, I>,
  options: Partial<SessionMiddleware.SealedOptions> = {}
): Layer.Layer<SessionMiddleware.Settings<Self>, InvalidConfig> =>
  tag.layer({ ...options, secrets: options.secrets ?? [Redacted.make("effect-session/SessionTesting: a test secret only")] })

/**
 * A client of `app` behind a sealed-cookie session's middleware, in-process: `makeClient` for the sealed mode. It
 * keeps the cookie as a browser does; `seed` seals data into it, `data` opens it.
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeSealedClient = <Self, Id extends string, A, I, E, R>(
  tag: SessionMiddleware.SealedSessionTag<Self, Id, A, I>,
  app: SessionMiddleware.App<E, R>
): Effect.Effect<SealedClient<A>, never, Exclude<R, Self> | SessionMiddleware.Settings<Self>> =>
  Effect.gen(function*() {
    const settings = (yield* tag.Settings) as SealedResolved<A>
    const context = yield* Effect.context<Exclude<R, Self> | SessionMiddleware.Settings<Self>>()
    const { cookie, current, get, post, request, take } = browser(tag.middleware(app), settings.cookieName, context)

    const seed: SealedClient<A>["seed"] = (data, options = {}) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const remember = options.remember === true
        const encoded = Result.getOrThrowWith(settings.codec.encode(data), (reason) => new Error(`seeded data ${reason}`))
        const expiresAt = Renewal.expiresAt(Renewal.lifetime(settings.policy, remember), now, now)
        take(Result.getOrThrow(sealed(settings, Envelope.make(encoded, {}, now, remember), expiresAt)))
      })

    const data: SealedClient<A>["data"] = Effect.map(Clock.currentTimeMillis, (now) => {
      const sent = current()
      if (sent === undefined) return Option.none()
      return Result.getSuccess(Result.flatMap(opened(settings, sent, now), (payload) =>
        Result.flatMap(Envelope.decode(payload.envelope), (envelope) =>
          Renewal.outlived(Renewal.lifetime(settings.policy, envelope.r), envelope.c, now)
            ? Result.fail("outlived")
            : settings.codec.decode(envelope.d))))
    })

    return { request, get, post, seed, data, cookie }
  })

/**
 * The session's settings (its `layer` with `options`) and a memory store with its cleanup fiber off, for tests.
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = <Self, Id extends string, A, I>(
  tag: SessionMiddleware.SessionTag<Self, Id, A, I>,
  options: Options = {}
): Layer.Layer<SessionMiddleware.Settings<Self> | SessionStore.SessionStore, InvalidConfig> =>
  Layer.merge(tag.layer(options), MemorySessionStore.layer({ cleanupInterval: 0 }))

const requestOf = (method: string, path: string, cookie: string | undefined, init: RequestInit) => {
  const headers = new Headers(init.headers as Record<string, string> | undefined)
  if (cookie !== undefined) headers.set("cookie", cookie)
  let body: string | undefined
  if (init.form !== undefined) {
    headers.set("content-type", "application/x-www-form-urlencoded")
    body = new URLSearchParams(init.form as Record<string, string>).toString()
  } else if (init.json !== undefined) {
    headers.set("content-type", "application/json")
    body = JSON.stringify(init.json)
  }
  return HttpServerRequest.fromWeb(new Request(new URL(path, "http://localhost"), { method, headers, body: body ?? null }))
}

/** The in-process browser both clients share: it sends requests through `handled` and keeps the session cookie. */
const browser = <R>(
  handled: SessionMiddleware.App<unknown, R>,
  cookieName: string,
  context: Context.Context<R>
) => {
  let cookie: string | undefined
  const request = (method: string, path: string, init: RequestInit = {}) =>
    Effect.gen(function*() {
      const done = yield* Deferred.make<HttpServerResponse.HttpServerResponse>()
      const sent = requestOf(method, path, cookie === undefined ? undefined : `${cookieName}=${cookie}`, init)
      // Each request starts with no pre-response handlers, as a server runs it: the save it arranges is its own.
      yield* HttpEffect.toHandled(handled, (_, response) => Deferred.succeed(done, response)).pipe(
        Effect.provideService(HttpServerRequest.HttpServerRequest, sent),
        // What the caller provides around a request (a clock, say) comes before what the client captured.
        Effect.updateContext((current: Context.Context<never>) => Context.merge(context, current)),
        // A handler's error is answered (a Respondable's own response, else a 500) before it is re-raised.
        Effect.exit
      )
      const response = yield* Deferred.await(done)
      const web = HttpServerResponse.toWeb(response)
      const setCookie = web.headers.getSetCookie()
      const ours = Cookies.fromSetCookie(setCookie).cookies[cookieName]
      if (ours !== undefined) cookie = ours.value === "" ? undefined : ours.value
      return {
        status: web.status,
        body: yield* Effect.promise(() => web.text()),
        headers: Object.fromEntries(web.headers.entries()),
        setCookie
      } satisfies Reply
    })
  return {
    request,
    get: (path: string, init?: RequestInit) => request("GET", path, init),
    post: (path: string, init?: RequestInit) => request("POST", path, init),
    current: () => cookie,
    take: (value: string) => void (cookie = value),
    cookie: Effect.sync(() => Option.fromNullishOr(cookie))
  }
}

/**
 * A client of `app` behind `tag`'s middleware, in-process. It keeps the session cookie as a browser does (a
 * `Max-Age=0` deletes it).
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeClient = <Self, Id extends string, A, I, E, R>(
  tag: SessionMiddleware.SessionTag<Self, Id, A, I>,
  app: SessionMiddleware.App<E, R>
): Effect.Effect<
  Client<A>,
  never,
  Exclude<R, Self> | SessionMiddleware.Settings<Self> | SessionStore.SessionStore
> =>
  Effect.gen(function*() {
    const settings = (yield* tag.Settings) as Resolved<A>
    const store = yield* SessionStore.SessionStore
    const context = yield* Effect.context<Exclude<R, Self> | SessionMiddleware.Settings<Self> | SessionStore.SessionStore>()
    const { cookie, current, get, post, request, take } = browser(tag.middleware(app), settings.cookieName, context)

    const seed: Client<A>["seed"] = (data, options = {}) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const remember = options.remember === true
        const encoded = Result.getOrThrowWith(settings.codec.encode(data), (reason) => new Error(`seeded data ${reason}`))
        const expiresAt = Renewal.expiresAt(Renewal.lifetime(settings.policy, remember), now, now)
        const value = Envelope.encode(Envelope.make(encoded, {}, now, remember))
        const key = yield* store.generate({ value, expiresAt: DateTime.makeUnsafe(expiresAt), subject: options.subject ?? null })
        take(SessionCookie.value(key, settings.secrets))
      })

    const data: Client<A>["data"] = Effect.suspend(() => {
      const sent = current()
      return sent === undefined ? Effect.succeedNone : store.get(sent.split(".")[0]!).pipe(
        Effect.map((stored) =>
          Result.getSuccess(Result.flatMap(Envelope.decode(stored.value), (envelope) => settings.codec.decode(envelope.d)))
        ),
        Effect.catchTags({ NotFound: () => Effect.succeedNone, Expired: () => Effect.succeedNone })
      )
    })

    return { request, get, post, seed, data, cookie }
  })
