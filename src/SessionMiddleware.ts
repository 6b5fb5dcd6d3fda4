/**
 * Sessions for `@effect/platform` HTTP servers: a middleware that loads the session named by the request's cookie
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
 * The modules behind it: `internal/middlewareSettings` (options), `internal/requestSession` (load, the handlers'
 * view), `internal/sessionSave` (the save), `internal/httpErrors` (errors and their responses).
 *
 * @since 0.1.0
 */
import {
  HttpApiMiddleware,
  HttpLayerRouter,
  type HttpApp,
  HttpServerRequest
} from "@effect/platform"
import { type ConfigError, Context, Effect, Layer, type Schema } from "effect"
import type { CsrfTokenInvalid } from "./CsrfProtection.js"
import {
  ApiErrors,
  type SessionConflict,
  type SessionTooLarge,
  type SessionUndecodable,
  type SessionUnavailable
} from "./internal/httpErrors.js"
import type { CurrentSession, Definition, Options } from "./internal/middlewareModel.js"
import * as MiddlewareSettings from "./internal/middlewareSettings.js"
import type { Resolved } from "./internal/middlewareSettings.js"
import { type Configured, unwrapConfig } from "./internal/options.js"
import { requestSession } from "./internal/requestSession.js"
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
export interface SessionTag<Self, Id extends string, A, I> extends Context.TagClass<Self, Id, CurrentSession<A>> {
  readonly schema: Schema.Schema<A, I>
  readonly initial: A
  /** The tag of the validated settings the middleware reads. */
  readonly Settings: Context.Tag<Settings<Self>, unknown>
  /** The settings as a layer; bad options fail it with `InvalidConfig` (never a request). */
  readonly layer: (options?: Options) => Layer.Layer<Settings<Self>, InvalidConfig>
  /** {@link layer} with the options read through `Config`. */
  readonly layerConfig: (
    config: Configured<Options>
  ) => Layer.Layer<Settings<Self>, InvalidConfig | ConfigError.ConfigError>
  /**
   * Loads the request's session and arranges for it to be saved with the response: what the middleware runs before
   * each handler. For integrations (an `HttpApiMiddleware`, an `HttpLayerRouter` middleware).
   */
  readonly forRequest: Effect.Effect<
    CurrentSession<A>,
    CsrfTokenInvalid | SessionUnavailable | SessionUndecodable,
    Settings<Self> | SessionStore.SessionStore | HttpServerRequest.HttpServerRequest
  >
  /**
   * Wraps an app (or, through `HttpRouter.use`, a router) so that its handlers can `yield*` the tag:
   * `HttpServer.serve(Session.middleware(app))`, `router.pipe(HttpRouter.use(Session.middleware))`.
   */
  readonly middleware: <E, R>(
    app: HttpApp.Default<E, R>
  ) => HttpApp.Default<
    E | CsrfTokenInvalid | SessionUnavailable | SessionUndecodable,
    Exclude<R, Self> | Settings<Self> | SessionStore.SessionStore | HttpServerRequest.HttpServerRequest
  >
  /**
   * The session as an `HttpApiMiddleware`: `group.middleware(Session.Api)` gives the group's handlers the tag, and
   * declares `SessionUnavailable` (503) and `SessionConflict` (409) as errors of its endpoints (so they show in
   * OpenAPI). Implemented by {@link apiLayer}.
   */
  readonly Api: HttpApiMiddleware.TagClass<
    ApiMiddleware<Self>,
    `${Id}/HttpApi`,
    {
      readonly provides: Context.Tag<Self, CurrentSession<A>>
      readonly failure: typeof ApiErrors
    }
  >
  /** The implementation of {@link Api}; needs the settings layer and a store. */
  readonly apiLayer: Layer.Layer<ApiMiddleware<Self>, never, Settings<Self> | SessionStore.SessionStore>
  /**
   * The session as an `HttpLayerRouter` middleware: provide `Session.routerMiddleware.layer` to routes, and their
   * handlers can `yield*` the tag.
   */
  readonly routerMiddleware: HttpLayerRouter.Middleware<{
    provides: Self
    handles: never
    error: never
    requires: never
    layerError: never
    layerRequires: Settings<Self> | SessionStore.SessionStore
  }>
}

/**
 * The identifier of a session tag's `HttpApiMiddleware`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ApiMiddleware<Self> {
  readonly [HttpApiMiddleware.TypeId]: {
    readonly provides: Self
    readonly failure: SessionUnavailable | SessionConflict | SessionTooLarge | SessionUndecodable | CsrfTokenInvalid
    readonly failureContext: never
  }
}

/**
 * Defines a session at module level: its tag (handlers `yield*` it), schema and initial data. Configuration comes
 * later, from its `layer`, whose bad options fail as a typed `InvalidConfig`.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServerResponse } from "@effect/platform"
 * import { Effect, Schema } from "effect"
 * import { SessionMiddleware } from "effect-session"
 *
 * class AppSession extends SessionMiddleware.Tag<AppSession>()("AppSession", {
 *   schema: Schema.Struct({ user: Schema.NullOr(Schema.String), visits: Schema.Number }),
 *   initial: { user: null, visits: 0 }
 * }) {}
 *
 * const app = HttpRouter.empty.pipe(
 *   HttpRouter.get("/", Effect.gen(function* () {
 *     const session = yield* AppSession
 *     yield* session.update((s) => ({ ...s, visits: s.visits + 1 }))
 *     return HttpServerResponse.text(`visits: ${(yield* session.get).visits}`)
 *   })),
 *   HttpRouter.use(AppSession.middleware)
 * )
 * // provide AppSession.layer({ idleTimeout: "30 minutes" }) and a SessionStore
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const Tag = <Self>() =>
<const Id extends string, A, I>(id: Id, definition: Definition<A, I>): SessionTag<Self, Id, A, I> => {
  const TagClass = Context.Tag(id)<Self, CurrentSession<A>>()
  const SettingsTag = Context.GenericTag<Settings<Self>, Resolved<A>>(`${id}/Settings`)

  const layer = (options: Options = {}) => Layer.effect(SettingsTag, MiddlewareSettings.configure(definition, options))
  const layerConfig = (config: Configured<Options>) =>
    Layer.unwrapEffect(Effect.map(unwrapConfig(config), layer))

  // One step per request: the settings, the store and the request, read from the context together.
  const forRequest = Effect.contextWithEffect((context: Context.Context<Settings<Self> | SessionStore.SessionStore | HttpServerRequest.HttpServerRequest>) =>
    requestSession(
      Context.unsafeGet(context, SettingsTag),
      Context.unsafeGet(context, SessionStore.SessionStore),
      Context.unsafeGet(context, HttpServerRequest.HttpServerRequest)
    )
  )
  const provided = <X, E, R>(effect: Effect.Effect<X, E, R>) =>
    Effect.flatMap(forRequest, (session) => Effect.provideService(effect, TagClass, session))

  const middleware = <E, R>(app: HttpApp.Default<E, R>) => provided(app)

  const Api = HttpApiMiddleware.Tag<ApiMiddleware<Self>>()(`${id}/HttpApi`, { provides: TagClass, failure: ApiErrors })
  const withStore = Effect.all([SettingsTag, SessionStore.SessionStore])
  // The service type is a conditional type of the tag's options that TypeScript cannot resolve for a generic `A`;
  // `SessionTag` states the layer's type.
  const apiLayer = Layer.effect(
    Api,
    Effect.map(withStore, ([settings, store]) =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => requestSession(settings, store, request))) as Effect.Effect<never>
  )

  const routerMiddleware = HttpLayerRouter.middleware<{ provides: Self }>()(
    Effect.map(withStore, ([settings, store]) => (httpEffect) =>
      Effect.flatMap(
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => requestSession(settings, store, request)),
        (session) => Effect.provideService(httpEffect, TagClass, session)
      ))
  )

  return Object.assign(TagClass, {
    schema: definition.schema,
    initial: definition.initial,
    Settings: SettingsTag,
    layer,
    layerConfig,
    forRequest,
    middleware,
    Api,
    apiLayer,
    routerMiddleware
  }) as unknown as SessionTag<Self, Id, A, I>
}
