/**
 * Sessions for `@effect/platform` HTTP servers: a middleware that loads the session named by the request's cookie
 * and provides a typed `CurrentSession` to handlers, then saves what they changed in a pre-response handler (so
 * error responses carry the right cookie too).
 *
 * - Typed data through a `Schema`; a stored value that no longer decodes counts as no session (and is logged).
 * - Flash messages, readable on the next request only.
 * - `regenerate` on login (a new key, atomically, against fixation): the old key stays readable for a short stale
 *   period with the data it had before, read-only; a write through it is refused with a 409, never dropped.
 * - Idle timeout (sliding, renewed at most once per `renewalThreshold` of it) and an absolute lifetime.
 * - Overlapping requests never lose each other's changes: the save replays this request's changes (field patches
 *   and `update` functions) onto the value currently stored, through the store's atomic `modify`.
 * - A request that changes nothing costs one SELECT and no write; a request without a cookie costs nothing.
 *
 * @since 0.1.0
 */
import {
  Cookies,
  HttpApiMiddleware,
  HttpApiSchema,
  HttpLayerRouter,
  type HttpApp,
  HttpApp as App,
  type HttpServerRequest,
  HttpServerRequest as Request,
  HttpServerRespondable,
  HttpServerResponse
} from "@effect/platform"
import {
  Config,
  type ConfigError,
  Context,
  Duration,
  Effect,
  Either,
  Layer,
  Option,
  Schema
} from "effect"
import * as ChangeLog from "./internal/changeLog.js"
import * as Envelope from "./internal/envelope.js"
import * as FailureLog from "./internal/failureLog.js"
import * as OwnerCheck from "./internal/owner.js"
import * as Observability from "./internal/observability.js"
import { durationOption } from "./internal/options.js"
import * as Renewal from "./internal/renewal.js"
import * as RequestState from "./internal/requestState.js"
import * as SessionCookie from "./internal/sessionCookie.js"
import { InvalidConfig, type InvalidSubject } from "./SessionError.js"
import * as SessionKey from "./SessionKey.js"
import * as SessionStore from "./SessionStore.js"

const unavailableMessage = "sessions are temporarily unavailable"

/**
 * The session store could not be reached (or did not answer within its deadline) while loading or saving the
 * session. Handlers can `catchTag` it; otherwise it renders as `503 Service Unavailable` with `Retry-After` (never
 * as a silently empty session). Encoded (in an HttpApi response), it says only that sessions are temporarily
 * unavailable: the store failure behind it is kept in `cause`, which is never encoded.
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionUnavailable extends Schema.TaggedError<SessionUnavailable>()("SessionUnavailable", {
  message: Schema.optionalWith(Schema.Literal(unavailableMessage), { default: () => unavailableMessage })
}, HttpApiSchema.annotations({ status: 503, description: "Sessions are temporarily unavailable; retry later" }))
  implements HttpServerRespondable.Respondable
{
  /** The error for a store failure, which it keeps as its (never encoded) `cause`. */
  static because(cause: unknown): SessionUnavailable {
    const error = new SessionUnavailable()
    Object.defineProperty(error, "cause", { value: cause, enumerable: false, configurable: true, writable: true })
    return error
  }
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(unavailableResponse)
  }
}

const retryAfter = { "retry-after": "5", "cache-control": "no-store" }

const unavailableResponse = HttpServerResponse.text(`Service Unavailable: ${unavailableMessage}`, {
  status: 503,
  headers: retryAfter
})

/** The 503 in the error's own encoding, for a request whose response was to be JSON (as an HttpApi writes it). */
const unavailableJson = HttpServerResponse.unsafeJson(
  { _tag: "SessionUnavailable", message: unavailableMessage },
  { status: 503, headers: retryAfter }
)

/**
 * A write to the session was refused, and nothing of it was stored:
 * - `"Rotated"`: the request's key was rotated away (by a login, usually in another request): it is read-only
 *   until its stale period ends, so a key planted before a login can never change the logged-in session;
 * - `"Ended"`: the session ended (destroyed or expired) while the request ran.
 *
 * Handlers can `catchTag` it; otherwise it renders as `409 Conflict`, without touching the cookie.
 *
 * @since 0.2.0
 * @category errors
 */
export class SessionConflict extends Schema.TaggedError<SessionConflict>()("SessionConflict", {
  reason: Schema.Literal("Rotated", "Ended")
}, HttpApiSchema.annotations({ status: 409, description: "The session changed under the request; nothing was stored" }))
  implements HttpServerRespondable.Respondable
{
  override get message() {
    return this.reason === "Rotated"
      ? "this session key was replaced (for example by a login); the change was not applied"
      : "this session ended while the request ran; the change was not applied"
  }
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(conflictResponse(this))
  }
}

const conflictResponse = (conflict: SessionConflict, json = false) =>
  json
    ? HttpServerResponse.unsafeJson({ _tag: conflict._tag, reason: conflict.reason }, {
      status: 409,
      headers: { "cache-control": "no-store" }
    })
    : HttpServerResponse.text(`Conflict: ${conflict.message}`, { status: 409, headers: { "cache-control": "no-store" } })

/** Whether a response is JSON (`application/json`, `application/problem+json`, ...). */
const isJson = (response: HttpServerResponse.HttpServerResponse) => {
  const type = response.headers["content-type"] ?? ("contentType" in response.body ? response.body.contentType : "")
  return /^application\/(?:[\w.-]+\+)?json\s*(?:;|$)/i.test(type ?? "")
}

/**
 * The session of the current request, as handlers see it. Changes are applied locally at once (so `get` sees
 * them) and saved when the response is sent. Use its members (destructuring works); don't copy it with a spread:
 * the Effect-valued members are getters and would be left behind.
 *
 * @since 0.1.0
 * @category models
 */
export interface CurrentSession<A> {
  /** The session data (the `initial` value for a new session). */
  readonly get: Effect.Effect<A, SessionUnavailable>
  /**
   * Replaces the data. Only the top-level fields that differ from the current data are saved, so a concurrent
   * request that changed other fields keeps its changes.
   */
  readonly set: (data: A) => Effect.Effect<void, SessionUnavailable | SessionConflict>
  /** Applies `f`; on save `f` is re-applied to the value then stored, so concurrent updates compose (counters). */
  readonly update: (f: (data: A) => A) => Effect.Effect<void, SessionUnavailable | SessionConflict>
  /** Queues a one-shot message, readable through `flashes` on the next request only. */
  readonly flash: (key: string, message: string) => Effect.Effect<void, SessionUnavailable | SessionConflict>
  /** The flash messages queued by the previous request (consumed by this one). */
  readonly flashes: Effect.Effect<Readonly<Record<string, string>>, SessionUnavailable>
  /**
   * Moves the session to a new key, keeping its data (call it on login, against session fixation). The old key
   * stays readable for `staleTimeout` with the data it had before this request, read-only, then it is gone.
   */
  readonly regenerate: Effect.Effect<void, SessionUnavailable | SessionConflict>
  /**
   * Removes the session from the store and expires the cookie. Later changes in this request start a new one.
   * Through a rotated key it is refused, like any write.
   */
  readonly destroy: Effect.Effect<void, SessionUnavailable | SessionConflict>
  /** Persistent cookie (`Max-Age`) and the `remember` timeouts, or a browser-session cookie. */
  readonly rememberMe: (remember: boolean) => Effect.Effect<void, SessionUnavailable | SessionConflict>
  /** Whether this request started without a live session. */
  readonly isNew: Effect.Effect<boolean, SessionUnavailable>
  /** Whether the request's key was rotated away: the session reads as before the rotation and refuses writes. */
  readonly isRotated: Effect.Effect<boolean, SessionUnavailable>
  /** Who the session belongs to (`setSubject`), if anyone. */
  readonly subject: Effect.Effect<Option.Option<string>, SessionUnavailable>
  /**
   * Says who the session belongs to (a user id, at login), or with `null` that it belongs to nobody; with an
   * audience and small metadata (user agent, IP) to show in a list of sessions. Saved with the response: together
   * with a `regenerate`, in the rotation's one statement. A bad owner fails here, with `InvalidSubject`.
   */
  readonly setSubject: (
    subject: string | null,
    options?: Omit<SessionStore.Owner, "subject">
  ) => Effect.Effect<void, SessionUnavailable | SessionConflict | InvalidSubject>
  /** The live sessions of this session's subject, most recent first, the current one marked; none without one. */
  readonly sessions: Effect.Effect<ReadonlyArray<SessionStore.SessionInfo & { readonly current: boolean }>, SessionUnavailable>
  /**
   * Ends one of this subject's sessions, by id, at once; the current one's id ends this session (as `destroy`).
   * Whether a session ended: an id of another subject's session ends nothing.
   */
  readonly revoke: (id: string) => Effect.Effect<boolean, SessionUnavailable | SessionConflict>
  /**
   * "Log out everywhere": ends every session of this subject; with `keepCurrent`, all but this one ("everywhere
   * else"). How many other sessions ended.
   */
  readonly logoutEverywhere: (
    options?: { readonly keepCurrent?: boolean | undefined }
  ) => Effect.Effect<number, SessionUnavailable | SessionConflict>
}

/**
 * Options of the middleware, given to its layer. Every duration is a `Duration.DurationInput`.
 *
 * @since 0.1.0
 * @category options
 */
export interface Options {
  readonly cookie?: {
    /** Default `"session"`. A `__Host-` name requires Secure, Path=/ and no Domain (checked). */
    readonly name?: string | undefined
    readonly domain?: string | undefined
    /** Default `"/"`. */
    readonly path?: string | undefined
    /** Default `true`. Browsers accept Secure cookies on http://localhost. */
    readonly secure?: boolean | undefined
    /** Default `true`: scripts cannot read the cookie. */
    readonly httpOnly?: boolean | undefined
    /** Default `"lax"`. */
    readonly sameSite?: "lax" | "strict" | "none" | undefined
  } | undefined
  /** Session ends after this long without a request. Default 30 minutes. */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** Session ends this long after it was created, however active. Default 1 day. */
  readonly absoluteTimeout?: Duration.DurationInput | undefined
  /** Timeouts of remembered sessions (`rememberMe(true)`). Defaults 7 days idle, 30 days absolute. */
  readonly remember?: {
    readonly idleTimeout?: Duration.DurationInput | undefined
    readonly absoluteTimeout?: Duration.DurationInput | undefined
  } | undefined
  /**
   * A read-only request renews the idle timeout only once this fraction of it has passed since the last renewal,
   * so read traffic does not write on every request. Default 0.1; 0 renews on every request.
   */
  readonly renewalThreshold?: number | undefined
  /** How long a key replaced by `regenerate` stays readable (read-only). Default 10 seconds. */
  readonly staleTimeout?: Duration.DurationInput | undefined
}

/**
 * What a session holds: the schema of its data (whose encoded form must be JSON) and the data of a new session.
 *
 * @since 0.2.0
 * @category models
 */
export interface Definition<A, I> {
  readonly schema: Schema.Schema<A, I>
  readonly initial: A
}

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

/** The validated settings of one middleware. */
interface Resolved<A> {
  readonly cookieName: string
  readonly attributes: SessionCookie.Attributes
  readonly policy: Renewal.Policy
  readonly staleTimeout: number
  readonly codec: Envelope.DataCodec<A>
  readonly initial: A
  readonly logFailure: ReturnType<typeof FailureLog.make>
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
    config: Config.Config.Wrap<Options>
  ) => Layer.Layer<Settings<Self>, InvalidConfig | ConfigError.ConfigError>
  /**
   * Loads the request's session and arranges for it to be saved with the response: what the middleware runs before
   * each handler. For integrations (an `HttpApiMiddleware`, an `HttpLayerRouter` middleware).
   */
  readonly forRequest: Effect.Effect<
    CurrentSession<A>,
    never,
    Settings<Self> | SessionStore.SessionStore | HttpServerRequest.HttpServerRequest
  >
  /**
   * Wraps an app (or, through `HttpRouter.use`, a router) so that its handlers can `yield*` the tag:
   * `HttpServer.serve(Session.middleware(app))`, `router.pipe(HttpRouter.use(Session.middleware))`.
   */
  readonly middleware: <E, R>(
    app: HttpApp.Default<E, R>
  ) => HttpApp.Default<
    E,
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
    readonly failure: SessionUnavailable | SessionConflict
    readonly failureContext: never
  }
}

/** What an HttpApi endpoint that uses the session can fail with. */
const ApiErrors = Schema.Union(SessionUnavailable, SessionConflict)

const positiveMillis = (option: string, input: Duration.DurationInput) => durationOption(option, input, 1)

/** Validates the options against the definition: every cookie attribute, timeout and the initial data. */
const configure = <A, I>(definition: Definition<A, I>, options: Options) =>
  Effect.gen(function*() {
    const attributes = SessionCookie.attributes(options.cookie)
    const cookieName = options.cookie?.name ?? "session"
    const violation = SessionCookie.violation(cookieName, attributes)
    if (violation !== undefined) return yield* new InvalidConfig({ option: "cookie", reason: violation })
    const threshold = options.renewalThreshold ?? 0.1
    if (!(typeof threshold === "number" && threshold >= 0 && threshold <= 1)) {
      return yield* new InvalidConfig({ option: "renewalThreshold", reason: "must be a fraction between 0 and 1" })
    }
    const policy: Renewal.Policy = {
      normal: {
        idle: yield* positiveMillis("idleTimeout", options.idleTimeout ?? "30 minutes"),
        absolute: yield* positiveMillis("absoluteTimeout", options.absoluteTimeout ?? "1 day")
      },
      remembered: {
        idle: yield* positiveMillis("remember.idleTimeout", options.remember?.idleTimeout ?? "7 days"),
        absolute: yield* positiveMillis("remember.absoluteTimeout", options.remember?.absoluteTimeout ?? "30 days")
      },
      threshold
    }
    const codec = Envelope.dataCodec(definition.schema)
    if (Either.isLeft(codec.encode(definition.initial))) {
      return yield* new InvalidConfig({ option: "initial", reason: "does not encode with the schema" })
    }
    const resolved: Resolved<A> = {
      cookieName,
      attributes,
      policy,
      staleTimeout: yield* durationOption("staleTimeout", options.staleTimeout ?? "10 seconds", 0),
      codec,
      initial: definition.initial,
      logFailure: FailureLog.make("effect-session/SessionMiddleware")
    }
    return resolved
  })

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

  const layer = (options: Options = {}) => Layer.effect(SettingsTag, configure(definition, options))
  const layerConfig = (config: Config.Config.Wrap<Options>) =>
    Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))

  const settingsAndStore = Effect.all([SettingsTag, SessionStore.SessionStore])
  // One step per request: the settings, the store and the request, read from the context together.
  const forRequest = Effect.contextWithEffect((context: Context.Context<Settings<Self> | SessionStore.SessionStore | Request.HttpServerRequest>) =>
    requestSessionOf(
      Context.unsafeGet(context, SettingsTag),
      Context.unsafeGet(context, SessionStore.SessionStore),
      Context.unsafeGet(context, Request.HttpServerRequest)
    )
  )

  const middleware = <E, R>(app: HttpApp.Default<E, R>) =>
    Effect.flatMap(forRequest, (session) => Effect.provideService(app, TagClass, session))

  const Api = HttpApiMiddleware.Tag<ApiMiddleware<Self>>()(`${id}/HttpApi`, { provides: TagClass, failure: ApiErrors })
  // The service type is a conditional type of the tag's options that TypeScript cannot resolve for a generic `A`;
  // `SessionTag` states the layer's type.
  const apiLayer = Layer.effect(
    Api,
    Effect.map(settingsAndStore, ([settings, store]) => requestSession(settings, store)) as Effect.Effect<never>
  )

  const routerMiddleware = HttpLayerRouter.middleware<{ provides: Self }>()(
    Effect.map(settingsAndStore, ([settings, store]) => (httpEffect) =>
      Effect.flatMap(requestSession(settings, store), (session) => Effect.provideService(httpEffect, TagClass, session)))
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

/** Loads the request's session and arranges for it to be saved with the response; returns the handlers' view. */
const requestSession = <A>(settings: Resolved<A>, store: SessionStore.Service) =>
  Effect.flatMap(Request.HttpServerRequest, (request) => requestSessionOf(settings, store, request))

const requestSessionOf = <A>(
  settings: Resolved<A>,
  store: SessionStore.Service,
  request: Request.HttpServerRequest
): Effect.Effect<CurrentSession<A>> => {
  const cookie = SessionCookie.inspect(request.headers, settings.cookieName)
  const loaded = Observability.middlewareSpan(
    "load",
    load(settings, store, cookie.key),
    (state) => ({
      "session.origin": state.origin._tag,
      "session.cookie": cookie.rejected ?? (Option.isSome(cookie.key) ? "present" : "absent")
    })
  )
  return Effect.flatMap(
    cookie.rejected === undefined
      ? loaded
      : Effect.zipRight(Observability.count(Observability.cookiesRejected, 1, ["reason", cookie.rejected]), loaded),
    (state) =>
      Effect.as(
        App.appendPreResponseHandler((_, response) => save(settings, store, state, response)),
        new RequestSession(settings, store, state)
      )
  )
}

/** Reads the request's session: no cookie costs nothing; a cookie costs one `get`. */
const load = <A>(
  settings: Resolved<A>,
  store: SessionStore.Service,
  key: Option.Option<SessionKey.SessionKey>
): Effect.Effect<RequestState.RequestState<A>> =>
  Effect.clockWith((clock) => {
    const now = clock.unsafeCurrentTimeMillis()
    /** A request without a live session: the initial data. */
    const fresh = (origin: RequestState.Origin = { _tag: "None" }): RequestState.RequestState<A> => ({
      startedAt: now,
      origin,
      draft: RequestState.emptyDraft(settings.initial, now),
      fate: { _tag: "Keep" }
    })
    if (Option.isNone(key)) return Effect.succeed(fresh())
    return Effect.matchEffect(store.get(key.value), {
      onFailure: (error) =>
        error._tag === "SessionStoreError"
          ? Effect.as(settings.logFailure("session load", error), fresh({ _tag: "Unavailable", error }))
          : Effect.succeed(fresh()),
      onSuccess: (stored) => {
        const parsed = Either.flatMap(
          Envelope.decode(stored.value),
          (envelope) => Either.map(settings.codec.decode(envelope.d), (data) => ({ envelope, data }))
        )
        if (Either.isLeft(parsed)) {
          return Effect.as(
            Effect.logWarning(`ignoring a stored session: ${parsed.left}`).pipe(
              Effect.annotateLogs("service", "effect-session/SessionMiddleware")
            ),
            fresh()
          )
        }
        const { data, envelope } = parsed.right
        if (Renewal.outlived(Renewal.lifetime(settings.policy, envelope.r), envelope.c, now)) {
          return Effect.succeed(fresh())
        }
        const state: RequestState.RequestState<A> = stored.rotated || envelope.x === true
          ? {
            // Its flash messages moved with the session to the new key.
            startedAt: now,
            origin: { _tag: "Stale", key: key.value },
            draft: { ...RequestState.loadedDraft(data, envelope), flashIn: {} },
            fate: { _tag: "Keep" }
          }
          : {
            startedAt: now,
            origin: { _tag: "Live", key: key.value, stored, expiresAt: now + Duration.toMillis(stored.expiresIn) },
            draft: RequestState.loadedDraft(data, envelope),
            fate: { _tag: "Keep" }
          }
        return Effect.succeed(state)
      }
    })
  })

/**
 * The handlers' view of the request's session. Its Effect-valued members are getters, made when a handler reads
 * them (a request that reads the data builds one Effect, not a dozen); its functions are bound, so handlers may
 * destructure them.
 */
class RequestSession<A> implements CurrentSession<A> {
  /** Set when the load failed: every member fails with it. The origin is settled by `load`, before any handler. */
  readonly #unavailable: Effect.Effect<never, SessionUnavailable> | undefined
  // Private fields (not TypeScript's `private`): the state holds the key, which no log or inspection may show.
  readonly #settings: Resolved<A>
  readonly #store: SessionStore.Service
  readonly #state: RequestState.RequestState<A>

  constructor(settings: Resolved<A>, store: SessionStore.Service, state: RequestState.RequestState<A>) {
    this.#settings = settings
    this.#store = store
    this.#state = state
    this.#unavailable = state.origin._tag === "Unavailable"
      ? Effect.fail(SessionUnavailable.because(state.origin.error))
      : undefined
  }

  #read<X>(f: () => X): Effect.Effect<X, SessionUnavailable> {
    return this.#unavailable ?? Effect.sync(f)
  }
  /** A write through a rotated key: refused (and only then is the error, with its stack trace, made). */
  get #refused(): Effect.Effect<never, SessionConflict> {
    return Effect.zipRight(
      Observability.count(Observability.writesRefused, 1, ["reason", "Rotated"]),
      Effect.failSync(() => new SessionConflict({ reason: "Rotated" }))
    )
  }
  #write(f: () => void): Effect.Effect<void, SessionUnavailable | SessionConflict> {
    return this.#unavailable ?? Effect.suspend(() => this.#state.origin._tag === "Stale" ? this.#refused : Effect.sync(f))
  }
  /** Data the schema cannot encode is a bug in the handler: it dies there, with the schema's message. */
  #encodable(data: A): A {
    const encoded = this.#settings.codec.encode(data)
    if (Either.isLeft(encoded)) throw new Error(`session data ${encoded.left}`)
    return data
  }
  /** The subject as this request sees it: a pending `setSubject`, else the stored one. */
  #currentSubject(): string | null {
    const { draft, origin } = this.#state
    return draft.owner !== undefined
      ? draft.owner.subject ?? null
      : origin._tag === "Live" ? origin.stored.subject : null
  }
  /** The public id of the request's live session, if it has one. */
  #currentId(): string | undefined {
    return this.#state.origin._tag === "Live" ? this.#state.origin.stored.id : undefined
  }
  #endCurrent(): void {
    const state = this.#state
    const { origin } = state
    if (origin._tag === "Live" || origin._tag === "Stale") state.fate = { _tag: "Destroy", key: origin.key }
    state.origin = { _tag: "None" }
    state.draft = RequestState.emptyDraft(this.#settings.initial, state.startedAt, state.draft.flashIn)
  }
  /** An action on the subject's other sessions: refused through a stale key; store failures are 503s. */
  #stateful<X>(f: () => Effect.Effect<X, unknown>): Effect.Effect<X, SessionUnavailable | SessionConflict> {
    return this.#unavailable ??
      Effect.suspend((): Effect.Effect<X, SessionUnavailable | SessionConflict> =>
        this.#state.origin._tag === "Stale"
          ? this.#refused
          : Effect.catchAll(f(), (error) => Effect.fail(SessionUnavailable.because(error)))
      )
  }

  get get() {
    return this.#read(() => this.#state.draft.data)
  }
  readonly set = (data: A) =>
    this.#write(() => {
      const { draft } = this.#state
      this.#encodable(data)
      draft.changes.push(
        ChangeLog.diff(draft.data, data, (data: A) => Either.getOrUndefined(this.#settings.codec.encode(data)))
      )
      draft.data = data
    })
  readonly update = (f: (data: A) => A) =>
    this.#write(() => {
      const { draft } = this.#state
      draft.data = this.#encodable(f(draft.data))
      draft.changes.push({ _tag: "Update", f })
    })
  readonly flash = (key: string, message: string) =>
    this.#write(() => void (this.#state.draft.flashOut[key] = message))
  get flashes() {
    return this.#read(() => this.#state.draft.flashIn)
  }
  get regenerate() {
    return this.#write(() => {
      if (this.#state.fate._tag === "Keep") this.#state.fate = { _tag: "Rotate" }
    })
  }
  // Through a rotated key, destroy is a write like any other: refused (it would end the stale copy early and let
  // in-flight requests of the new session's owner mint an anonymous session over the new cookie).
  get destroy() {
    return this.#write(() => this.#endCurrent())
  }
  readonly rememberMe = (remember: boolean) =>
    this.#write(() => {
      const { draft } = this.#state
      draft.rememberChanged = draft.rememberChanged || remember !== draft.remember
      draft.remember = remember
    })
  get isNew() {
    return this.#read(() => this.#state.origin._tag === "None")
  }
  get isRotated() {
    return this.#read(() => this.#state.origin._tag === "Stale")
  }
  get subject() {
    return this.#read(() => Option.fromNullable(this.#currentSubject()))
  }
  readonly setSubject = (subject: string | null, options: Omit<SessionStore.Owner, "subject"> = {}) =>
    Effect.flatMap(
      OwnerCheck.stored({ ...options, subject }),
      () => this.#write(() => void (this.#state.draft.owner = { ...options, subject }))
    )
  get sessions() {
    return this.#unavailable ?? Effect.suspend(() => {
      const subject = this.#currentSubject()
      if (subject === null || this.#state.origin._tag === "Stale") return Effect.succeed([])
      const currentId = this.#currentId()
      return this.#store.list(subject).pipe(
        Effect.map((sessions) => sessions.map((info) => ({ ...info, current: info.id === currentId }))),
        Effect.catchAll((error) => Effect.fail(SessionUnavailable.because(error)))
      )
    })
  }
  readonly revoke = (id: string) =>
    this.#stateful(() => {
      const subject = this.#currentSubject()
      const current = this.#currentId()
      if (current !== undefined && id === current) {
        this.#endCurrent()
        return Effect.succeed(true)
      }
      if (subject === null) return Effect.succeed(false)
      return this.#store.revoke(id, { subject }).pipe(
        Effect.as(true),
        Effect.catchTag("NotFound", () => Effect.succeed(false))
      )
    })
  readonly logoutEverywhere = (options: { readonly keepCurrent?: boolean | undefined } = {}) =>
    this.#stateful(() => {
      const subject = this.#currentSubject()
      const current = this.#currentId()
      const others = subject === null
        ? Effect.succeed(0)
        : this.#store.revokeSubject(subject, current === undefined ? {} : { except: current })
      if (options.keepCurrent !== true) this.#endCurrent()
      return others
    })
}

/**
 * The pre-response handler: stores what the plan says and sets the cookie. It cannot fail or hang: a store
 * failure becomes a 503, a refused write a 409, anything unexpected a logged 500.
 */
const save = <A>(
  settings: Resolved<A>,
  store: SessionStore.Service,
  state: RequestState.RequestState<A>,
  response: HttpServerResponse.HttpServerResponse
): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  let withVary = HttpServerResponse.setHeader(response, "vary", SessionCookie.vary(response.headers))
  // However the 503 was rendered (an HttpApi encodes the error itself), it says when to come back.
  if (state.origin._tag === "Unavailable" && response.status === 503) withVary = HttpServerResponse.setHeaders(withVary, retryAfter)
  // A response built from a session is nobody else's: shared caches must not keep it (unless the app said so).
  // Applied last, so a response that sets the cookie keeps the cookie's own `private, no-store`.
  const loaded = state.origin._tag === "Live" || state.origin._tag === "Stale"
  const privately = (final: HttpServerResponse.HttpServerResponse) =>
    loaded && final.headers["cache-control"] === undefined
      ? HttpServerResponse.setHeader(final, "cache-control", "private")
      : final
  return Effect.clockWith((clock) => {
    const now = clock.unsafeCurrentTimeMillis()
    const plan = RequestState.plan(state, now, settings.policy, settings.staleTimeout)
    if (plan._tag === "Skip") return Effect.succeed(privately(withVary))
    // The request failed: none of its session changes are applied (a rotation neither), and the cookie stays.
    if (response.status >= 500) {
      return Effect.as(
        settings.logFailure("session save skipped", new FailedRequest({ status: response.status }), "Warning"),
        privately(withVary)
      )
    }
    // A save that fails replaces the handler's response: in JSON when the handler's was JSON, so clients of an API
    // read an error they know (the error's own encoding) rather than text.
    const json = isJson(response)
    /** A value the app made that the store refused: a bug of the app's, logged, answered 500. */
    const failedInternally = (error: unknown) =>
      Effect.as(settings.logFailure("session save", error), withVaryOf(internalError))
    const saved = execute(settings, store, state, plan, now, withVary, json).pipe(
      Effect.catchTags({
        SessionStoreError: (error) =>
          Effect.as(
            settings.logFailure("session save", error),
            withVaryOf(json ? unavailableJson : unavailableResponse)
          ),
        InvalidValue: failedInternally,
        InvalidExpiry: failedInternally,
        InvalidSubject: failedInternally
      }),
      Effect.catchAllCause((cause) =>
        Effect.as(settings.logFailure("session save (defect)", cause), withVaryOf(internalError))
      ),
      Effect.map(privately)
    )
    return Observability.middlewareSpan("save", saved, (response) => ({
      "session.plan": plan._tag,
      "http.response.status_code": response.status
    }))
  })
}

/** Why a request's session changes were not saved: its response was a server error. For the log line. */
class FailedRequest extends Schema.TaggedError<FailedRequest>()("FailedRequest", { status: Schema.Number }) {
  override get message() {
    return `the response was ${this.status}: the request's session changes were discarded`
  }
}

const internalError = HttpServerResponse.text("Internal Server Error", { status: 500 })
const withVaryOf = (response: HttpServerResponse.HttpServerResponse) =>
  HttpServerResponse.setHeader(response, "vary", "Cookie")

const execute = <A>(
  settings: Resolved<A>,
  store: SessionStore.Service,
  state: RequestState.RequestState<A>,
  plan: Exclude<RequestState.Plan, { readonly _tag: "Skip" }>,
  now: number,
  withVary: HttpServerResponse.HttpServerResponse,
  json: boolean
) => {
  const { draft } = state
  const cookie = (from: HttpServerResponse.HttpServerResponse, key: string, maxAge: number | undefined) =>
    from.pipe(
      HttpServerResponse.mergeCookies(
        Cookies.fromIterable([SessionCookie.make(settings.cookieName, key, settings.attributes, maxAge)])
      ),
      HttpServerResponse.setHeader("cache-control", SessionCookie.privateCacheControl(from.headers))
    )
  const persistent = (at: number) => draft.remember ? at - now : undefined
  const replay = (stored: string) => RequestState.replay(draft, settings.codec)(stored).value
  const from = state.origin._tag === "Live" ? state.origin.stored : undefined
  /** A refused write: the handler's response is replaced, so nothing unstored is acknowledged. */
  const refused = (reason: SessionConflict["reason"]) => {
    const conflict = withVaryOf(conflictResponse(new SessionConflict({ reason }), json))
    return Effect.as(
      Observability.count(Observability.writesRefused, 1, ["reason", reason]),
      reason === "Ended" ? cookie(conflict, "", 0) : conflict
    )
  }
  /** A write the store refused: the session ended, or its key was rotated away, meanwhile. */
  const refusals = {
    NotFound: () => refused("Ended"),
    Expired: () => refused("Ended"),
    Rotated: () => refused("Rotated")
  }
  switch (plan._tag) {
    case "Create":
      return Effect.gen(function*() {
        if (plan.clear !== undefined) {
          yield* store.clear(plan.clear)
          yield* Observability.count(Observability.sessionsDestroyed)
        }
        const value = Envelope.encode(RequestState.toEnvelope(draft, settings.codec))
        const key = yield* store.generate({ value, expiry: plan.expiresAt - now, ...draft.owner })
        yield* Observability.count(Observability.sessionsCreated)
        return cookie(withVary, key, persistent(plan.expiresAt))
      })
    case "Clear":
      return store.clear(plan.key).pipe(
        Effect.zipRight(Observability.count(Observability.sessionsDestroyed)),
        Effect.as(cookie(withVary, "", 0))
      )
    case "Touch":
      return store.touch(plan.key, { expiry: plan.expiresAt - now }).pipe(
        Effect.as(draft.remember ? cookie(withVary, plan.key, persistent(plan.expiresAt)) : withVary),
        // A renewal is not a write the handler asked for: a session gone or rotated meanwhile is simply not renewed.
        Effect.catchTags({
          NotFound: () => Effect.succeed(withVary),
          Expired: () => Effect.succeed(withVary),
          Rotated: () => Effect.succeed(withVary)
        })
      )
    case "SetSubject":
      return store.setSubject(plan.key, draft.owner!.subject ?? null, draft.owner!).pipe(
        Effect.as(withVary),
        Effect.catchTags(refusals)
      )
    case "Write":
      // A new owner is set in the same statement as the data: both land or neither does.
      return store.modify(plan.key, replay, {
        expiry: plan.expiresAt === undefined ? undefined : plan.expiresAt - now,
        from,
        ...(draft.owner === undefined ? {} : { ...draft.owner, subject: draft.owner.subject ?? null })
      })
        .pipe(
          Effect.as(
            plan.expiresAt !== undefined && draft.remember
              ? cookie(withVary, plan.key, persistent(plan.expiresAt))
              : withVary
          ),
          Effect.catchTags({
            NotFound: () => plan.required ? refused("Ended") : Effect.succeed(cookie(withVary, "", 0)),
            Expired: () => plan.required ? refused("Ended") : Effect.succeed(cookie(withVary, "", 0)),
            Rotated: () => plan.required ? refused("Rotated") : Effect.succeed(withVary)
          })
        )
    case "Rotate":
      return store.rotate(plan.key, replay, {
        expiry: plan.expiresAt - now,
        staleTimeout: plan.staleTimeout,
        from,
        ...draft.owner
      }).pipe(
        Effect.tap(() => Observability.count(Observability.sessionsRotated)),
        Effect.map((rotation) => cookie(withVary, rotation.key, persistent(plan.expiresAt))),
        Effect.catchTags(refusals)
      )
  }
}
