/**
 * Sessions for Effect's HTTP servers (`effect/http`): a middleware that loads the session named by the request's cookie
 * and provides a typed `CurrentSession` to handlers, then saves what they changed in a pre-response handler (so
 * error responses carry the right cookie too).
 *
 * - Typed data through a `Schema`; a stored value that no longer decodes counts as no session (and is logged).
 * - Flash messages, readable on the next request only.
 * - `regenerate` on login (a new key, atomically, against fixation): the old key stays readable for a short stale
 *   period with the data it had before, read-only; a write through it is refused with a 409, never dropped.
 *   `dropPrivileges` on logout: a new key, and nothing left readable through the old one.
 * - Idle timeout (sliding, renewed at most once per `renewalThreshold` of it) and an absolute lifetime.
 * - Overlapping requests never lose each other's changes: the save replays this request's changes (field patches
 *   and `update` functions) onto the value currently stored, through the store's atomic `modify`.
 * - Session-bound CSRF tokens (`csrfTokens`), a `__Host-` cookie by default, optionally signed.
 * - A request that changes nothing costs one SELECT and no write; a request without a cookie costs nothing.
 *
 * `SealedTag` is the other mode, for apps that keep no server state: the session sealed into its cookie (AES-256-GCM),
 * with the same data, flash, timeouts, CSRF tokens and integrations, and none of what needs a store (revocation,
 * a user's sessions, merged concurrent writes).
 *
 * The modules behind it: `internal/middlewareSettings` (options), `internal/requestSession` (load, the handlers'
 * view), `internal/sessionView` (the view both modes share), `internal/sessionSave` (the save),
 * `internal/sealedSession` and `internal/sealedCookie` (the sealed mode), `internal/httpErrors` (errors and their
 * responses).
 *
 * @since 0.1.0
 */
import { HttpRouter, HttpServerRequest, type HttpServerResponse } from "effect/http"
import { HttpApiMiddleware } from "effect/http-api"
import { type Config, Context, Effect, Layer, type Schema } from "effect"
import type { CsrfTokenInvalid } from "./CsrfProtection.js"
import { ApiErrors, SealedApiErrors, type SessionUndecodable, type SessionUnavailable } from "./internal/httpErrors.js"
import type {
  CurrentSession,
  Definition,
  Options,
  SealedOptions,
  SealedSession
} from "./internal/middlewareModel.js"
import * as MiddlewareSettings from "./internal/middlewareSettings.js"
import type { Resolved } from "./internal/middlewareSettings.js"
import { type Configured, unwrapConfig } from "./internal/options.js"
import { requestSession } from "./internal/requestSession.js"
import { configure as configureSealed, type SealedResolved, sealedSession } from "./internal/sealedSession.js"
import type { InvalidConfig } from "./SessionError.js"
import * as SessionStore from "./SessionStore.js"

/**
 * The errors of the middleware: `SessionUnavailable` (503: the store could not be reached; handlers can
 * `catchTag` it), `SessionConflict` (409: a write could not be stored, `"Rotated"` or `"Ended"`),
 * `SessionTooLarge` (413: `set`/`update` beyond `maxBytes`) and `SessionUndecodable` (500, with
 * `onUndecodable: "fail"`).
 *
 * @since 0.1.0
 * @category errors
 */
export { SessionConflict, SessionTooLarge, SessionUndecodable, SessionUnavailable } from "./internal/httpErrors.js"

/**
 * What handlers see of their session (`CurrentSession`), the options of a session's layer (`Options`), and what
 * a session holds (`Definition`: its schema and initial data).
 *
 * @since 0.1.0
 * @category models
 */
export type { CurrentSession, Definition, Options } from "./internal/middlewareModel.js"

/**
 * The sealed-cookie mode's handlers' view (`SealedSession`: no subject, sessions, revocation or log out
 * everywhere, which a cookie cannot do) and the options of its layer (`SealedOptions`: `secrets` required).
 *
 * @since 0.3.0
 * @category models
 */
export type { SealedOptions, SealedSession } from "./internal/middlewareModel.js"

/**
 * @since 0.2.0
 * @category type ids
 */
export const SettingsTypeId: unique symbol = Symbol.for("effect-session/SessionMiddleware/Settings")

/**
 * The identifier of a session tag's validated settings, provided by its `layer`; `Self` is the tag.
 *
 * @since 0.2.0
 * @category models
 */
export interface Settings<Self> {
  readonly [SettingsTypeId]: (_: Self) => Self
}

/**
 * A session tag: handlers `yield*` it to get the {@link CurrentSession}; its statics build the settings layer and
 * the middleware.
 *
 * @since 0.2.0
 * @category models
 */
export interface SessionTag<Self, Id extends string, A, I> extends Context.ServiceClass<Self, Id, CurrentSession<A>> {
  readonly schema: Schema.Codec<A, I>
  readonly initial: A
  /** The tag of the validated settings the middleware reads. */
  readonly Settings: Context.Service<Settings<Self>, unknown>
  /** The settings as a layer; bad options fail it with `InvalidConfig` (never a request). */
  readonly layer: (options?: Options) => Layer.Layer<Settings<Self>, InvalidConfig>
  /** {@link layer} with the options read through `Config`. */
  readonly layerConfig: (
    config: Configured<Options>
  ) => Layer.Layer<Settings<Self>, InvalidConfig | Config.ConfigError>
  /**
   * Loads the request's session and arranges for it to be saved with the response: what the middleware runs before
   * each handler. For integrations (an `HttpApiMiddleware`, an `HttpRouter` middleware).
   */
  readonly forRequest: Effect.Effect<
    CurrentSession<A>,
    CsrfTokenInvalid | SessionUnavailable | SessionUndecodable,
    Settings<Self> | SessionStore.SessionStore | HttpServerRequest.HttpServerRequest
  >
  /**
   * Wraps an app (an effect answering the request; routes give one through `HttpRouter.toHttpEffect`) so that its
   * handlers can `yield*` the tag: `HttpServer.serve(Session.middleware(app))`. Around every route of an
   * `HttpRouter` (what v3's `HttpRouter.use` did): `Routes.pipe(Layer.provide(HttpRouter.middleware<{ provides:
   * Session }>()(Session.middleware, { global: true })))`; for some routes, see {@link routerMiddleware}.
   */
  readonly middleware: <E, R>(
    app: App<E, R>
  ) => App<
    E | CsrfTokenInvalid | SessionUnavailable | SessionUndecodable,
    Exclude<R, Self> | Settings<Self> | SessionStore.SessionStore
  >
  /**
   * The session as an `HttpApiMiddleware`: `group.middleware(Session.Api)` gives the group's handlers the tag, and
   * declares `SessionUnavailable` (503) and `SessionConflict` (409) as errors of its endpoints (so they show in
   * OpenAPI). Implemented by {@link apiLayer}.
   */
  readonly Api: HttpApiMiddleware.ServiceClass<ApiMiddleware<Self>, `${Id}/HttpApi`, ApiConfig<Self, typeof ApiErrors>>
  /** The implementation of {@link Api}; needs the settings layer and a store. */
  readonly apiLayer: Layer.Layer<ApiMiddleware<Self>, never, Settings<Self> | SessionStore.SessionStore>
  /**
   * The session as an `HttpRouter` middleware: provide `Session.routerMiddleware.layer` to routes, and their
   * handlers can `yield*` the tag.
   */
  readonly routerMiddleware: RouterMiddleware<Self, Settings<Self> | SessionStore.SessionStore>
}

/**
 * A session tag's `HttpRouter` middleware: it provides the tag to the routes, and its layer needs `Needs`.
 *
 * @since 0.3.0
 * @category models
 */
export type RouterMiddleware<Self, Needs> = HttpRouter.Middleware<{
  provides: Self
  handles: never
  error: never
  requires: never
  layerError: never
  layerRequires: Needs
}>

/**
 * The identifier of a session tag's `HttpApiMiddleware`.
 *
 * @since 0.2.0
 * @category models
 */
export type ApiMiddleware<Self> = {
  // The key is the (unexported) TypeId of `HttpApiMiddleware`.
  readonly [K in keyof HttpApiMiddleware.AnyId]: Omit<ApiConfig<Self, typeof ApiErrors>, "security">
}

/**
 * A session tag's `HttpApiMiddleware` configuration: it provides the tag, and its endpoints may fail with `Errors`.
 *
 * @since 1.0.0
 * @category models
 */
export interface ApiConfig<Self, Errors extends ReadonlyArray<Schema.Top>> {
  readonly provides: Self
  readonly requires: never
  readonly error: Errors
  readonly clientError: never
  readonly requiredForClient: false
  readonly security: never
}

/**
 * An HTTP app (what v3 called `HttpApp.Default`): an effect answering the request in its context.
 *
 * @since 1.0.0
 * @category models
 */
export type App<E, R> = Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>

/**
 * A sealed-cookie session tag (see {@link SealedTag}): handlers `yield*` it to get the {@link SealedSession}; its
 * statics build the settings layer and the middleware, as a {@link SessionTag}'s do, without a store.
 *
 * @since 0.3.0
 * @category models
 */
export interface SealedSessionTag<Self, Id extends string, A, I> extends Context.ServiceClass<Self, Id, SealedSession<A>> {
  readonly schema: Schema.Codec<A, I>
  readonly initial: A
  /** The tag of the validated settings the middleware reads. */
  readonly Settings: Context.Service<Settings<Self>, unknown>
  /** The settings as a layer (the keys derived once); bad options or secrets fail it with `InvalidConfig`. */
  readonly layer: (options: SealedOptions) => Layer.Layer<Settings<Self>, InvalidConfig>
  /** {@link layer} with the options read through `Config` (`secrets: Config.array(Config.redacted(…))`). */
  readonly layerConfig: (
    config: Configured<SealedOptions>
  ) => Layer.Layer<Settings<Self>, InvalidConfig | Config.ConfigError>
  /** Opens the request's session and arranges for it to be sealed into the response: what the middleware runs. */
  readonly forRequest: Effect.Effect<
    SealedSession<A>,
    CsrfTokenInvalid | SessionUndecodable,
    Settings<Self> | HttpServerRequest.HttpServerRequest
  >
  /** Wraps an app so that its handlers can `yield*` the tag (see `SessionTag.middleware`). */
  readonly middleware: <E, R>(
    app: App<E, R>
  ) => App<E | CsrfTokenInvalid | SessionUndecodable, Exclude<R, Self> | Settings<Self>>
  /**
   * The session as an `HttpApiMiddleware`: `group.middleware(Session.Api)`; declares `SessionTooLarge` (413) and
   * `CsrfTokenInvalid` (403). Implemented by {@link apiLayer}.
   */
  readonly Api: HttpApiMiddleware.ServiceClass<
    SealedApiMiddleware<Self>,
    `${Id}/HttpApi`,
    ApiConfig<Self, typeof SealedApiErrors>
  >
  /** The implementation of {@link Api}; needs only the settings layer. */
  readonly apiLayer: Layer.Layer<SealedApiMiddleware<Self>, never, Settings<Self>>
  /** The session as an `HttpRouter` middleware: provide `Session.routerMiddleware.layer` to routes. */
  readonly routerMiddleware: RouterMiddleware<Self, Settings<Self>>
}

/**
 * The identifier of a sealed-cookie session tag's `HttpApiMiddleware`.
 *
 * @since 0.3.0
 * @category models
 */
export type SealedApiMiddleware<Self> = {
  readonly [K in keyof HttpApiMiddleware.AnyId]: Omit<ApiConfig<Self, typeof SealedApiErrors>, "security">
}

/**
 * Defines a session at module level: its tag (handlers `yield*` it), schema and initial data. Configuration comes
 * later, from its `layer`, whose bad options fail as a typed `InvalidConfig`.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 * import { Effect, Layer, Schema } from "effect"
 * import { SessionMiddleware } from "effect-session"
 *
 * class AppSession extends SessionMiddleware.Tag<AppSession>()("AppSession", {
 *   schema: Schema.Struct({ user: Schema.NullOr(Schema.String), visits: Schema.Number }),
 *   initial: { user: null, visits: 0 }
 * }) {}
 *
 * const Routes = HttpRouter.add("GET", "/", Effect.gen(function* () {
 *   const session = yield* AppSession
 *   yield* session.update((s) => ({ ...s, visits: s.visits + 1 }))
 *   return HttpServerResponse.text(`visits: ${(yield* session.get).visits}`)
 * })).pipe(Layer.provide(AppSession.routerMiddleware.layer))
 * // HttpRouter.serve(Routes), provided AppSession.layer({ idleTimeout: "30 minutes" }) and a SessionStore
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const Tag = <Self>() =>
<const Id extends string, A, I>(id: Id, definition: Definition<A, I>): SessionTag<Self, Id, A, I> =>
  assemble<Self, CurrentSession<A>, Resolved<A>, Options | undefined, Settings<Self> | SessionStore.SessionStore, A, I>(
    id,
    definition,
    (options = {}) => MiddlewareSettings.configure(definition, options),
    ApiErrors,
    // One step per request: the settings, the store and the request, read from the context together.
    (settings, context) => {
      const store = Context.getUnsafe(context, SessionStore.SessionStore)
      return (request) => requestSession(settings, store, request)
    }
  ) as unknown as SessionTag<Self, Id, A, I>

/**
 * Defines a session kept in its cookie alone, sealed with AES-256-GCM (for apps that keep no server state:
 * serverless): its tag, schema and initial data, as {@link Tag}. Its `layer` takes the sealing `secrets` and needs
 * no store. Handlers get a {@link SealedSession}: what a cookie can do. It cannot be revoked or listed, log out
 * everywhere, or merge overlapping requests' writes (the last response's cookie wins); a copy of a cookie opens
 * until its sealed expiry, whatever the browser did since. See the README's table.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 * import { Effect, Layer, Redacted, Schema } from "effect"
 * import { SessionMiddleware } from "effect-session"
 *
 * class Cart extends SessionMiddleware.SealedTag<Cart>()("Cart", {
 *   schema: Schema.Struct({ items: Schema.Array(Schema.String) }),
 *   initial: { items: [] }
 * }) {}
 *
 * const Routes = HttpRouter.add("POST", "/add", Effect.gen(function* () {
 *   const cart = yield* Cart
 *   yield* cart.update((c) => ({ items: [...c.items, "book"] })) // SessionTooLarge past the cookie's 4 KB
 *   return HttpServerResponse.text(`${(yield* cart.get).items.length} items`)
 * })).pipe(Layer.provide(Cart.routerMiddleware.layer))
 * // HttpRouter.serve(Routes), provided Cart.layer({ secrets: [Redacted.make(process.env.SESSION_SECRET!)] }): no store
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const SealedTag = <Self>() =>
<const Id extends string, A, I>(id: Id, definition: Definition<A, I>): SealedSessionTag<Self, Id, A, I> =>
  assemble<Self, SealedSession<A>, SealedResolved<A>, SealedOptions, Settings<Self>, A, I>(
    id,
    definition,
    (options) => configureSealed(definition, options),
    SealedApiErrors,
    (settings) => (request) => sealedSession(settings, request)
  ) as unknown as SealedSessionTag<Self, Id, A, I>

/**
 * A session tag, built the same way for both modes: its settings layer (`configure`), and its integrations from
 * `bind`, which takes the settings and what else the middleware needs from the context (a store, server side) and
 * gives the step each request runs. The interfaces (`SessionTag`, `SealedSessionTag`) state the types.
 */
const assemble = <Self, Service, S, O, R, A = unknown, I = unknown>(
  id: string,
  definition: Definition<A, I>,
  configure: (options: O) => Effect.Effect<S, InvalidConfig>,
  error: ReadonlyArray<Schema.Top>,
  bind: (
    settings: S,
    context: Context.Context<R>
  ) => (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<Service, unknown, HttpServerRequest.HttpServerRequest>
) => {
  const TagClass = Context.Service<Self, Service>()(id)
  const SettingsTag = Context.Service<Settings<Self>, S>(`${id}/Settings`)
  const layer = (options: O) => Layer.effect(SettingsTag, configure(options))
  const bound = (context: Context.Context<R>) => bind(Context.getUnsafe(context as Context.Context<Settings<Self>>, SettingsTag), context)
  const forRequest = Effect.contextWith((context: Context.Context<R | HttpServerRequest.HttpServerRequest>) =>
    bound(context as Context.Context<R>)(Context.getUnsafe(context, HttpServerRequest.HttpServerRequest))
  )
  // Built once with the layer: each request then reads only itself from the context.
  const perRequest = Effect.map(
    Effect.context<R>(),
    (context) => Effect.flatMap(HttpServerRequest.HttpServerRequest, bound(context))
  )
  // The session around a handler: what every integration runs.
  const around = (session: Effect.Effect<Service, unknown, HttpServerRequest.HttpServerRequest>) => (httpEffect: Effect.Effect<any, any, any>) =>
    Effect.flatMap(session, (service) => Effect.provideService(httpEffect, TagClass, service))
  const Api = HttpApiMiddleware.Service<unknown>()(`${id}/HttpApi`, { error })
  return Object.assign(TagClass, {
    schema: definition.schema,
    initial: definition.initial,
    Settings: SettingsTag,
    layer,
    layerConfig: (config: Configured<O>) => Layer.unwrap(Effect.map(unwrapConfig(config), layer)),
    forRequest,
    middleware: <E, R2>(app: App<E, R2>) =>
      Effect.flatMap(forRequest, (session) => Effect.provideService(app, TagClass, session)),
    Api,
    // An HttpApiMiddleware wraps the endpoint (its decoding and handler): the session is loaded around it.
    apiLayer: Layer.effect(Api, Effect.map(perRequest, around) as Effect.Effect<never>),
    routerMiddleware: HttpRouter.middleware<{ provides: Self }>()(
      Effect.map(perRequest, around) as Effect.Effect<never>
    )
  })
}
