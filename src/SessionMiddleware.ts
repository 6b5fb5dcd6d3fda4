/**
 * Sessions for `@effect/platform` HTTP servers: a middleware that loads the session named by the request's cookie
 * and provides a typed `CurrentSession` to handlers, then saves what they changed in a pre-response handler (so
 * error responses carry the right cookie too).
 *
 * - Typed data through a `Schema`; a stored value that no longer decodes counts as no session (and is logged).
 * - Flash messages, readable on the next request only.
 * - `regenerate` (new key on login, against fixation; the old key stays readable for a short stale period),
 *   `destroy`, remember-me.
 * - Idle timeout (sliding, renewed at most once per `renewalThreshold` of it) and an absolute lifetime.
 * - Overlapping requests never lose each other's changes: the save replays this request's changes (field patches
 *   and `update` functions) onto the value currently stored, through the store's atomic `modify`.
 * - A request that changes nothing costs one SELECT and no write; a request without a cookie costs nothing.
 *
 * @since 0.1.0
 */
import {
  Cookies,
  type HttpApp,
  HttpApp as App,
  type HttpServerRequest,
  HttpServerRequest as Request,
  HttpServerRespondable,
  HttpServerResponse
} from "@effect/platform"
import { Context, Duration, Effect, Either, Option, ParseResult, Schema } from "effect"
import { finiteMillis } from "./internal/options.js"
import * as SessionCookie from "./internal/sessionCookie.js"
import { InvalidConfig, type SessionStoreError } from "./SessionError.js"
import type * as SessionKey from "./SessionKey.js"
import * as SessionStore from "./SessionStore.js"

/**
 * The session store could not be reached while loading or saving the session. Handlers can `catchTag` it;
 * otherwise it renders as `503 Service Unavailable` (never as a silently empty session).
 *
 * @since 0.1.0
 */
export class SessionUnavailable extends Schema.TaggedError<SessionUnavailable>()("SessionUnavailable", {
  cause: Schema.Defect
}) implements HttpServerRespondable.Respondable {
  override get message() {
    return "the session store is unavailable"
  }
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(HttpServerResponse.text("Service Unavailable", { status: 503, headers: { "retry-after": "5" } }))
  }
}

/**
 * The session of the current request, as handlers see it. Changes are applied locally at once (so `get` sees
 * them) and saved when the response is sent.
 *
 * @since 0.1.0
 */
export interface CurrentSession<A> {
  /** The session data (the `initial` value for a new session). */
  readonly get: Effect.Effect<A, SessionUnavailable>
  /**
   * Replaces the data. Only the top-level fields that differ from the current data are saved, so a concurrent
   * request that changed other fields keeps its changes.
   */
  readonly set: (data: A) => Effect.Effect<void, SessionUnavailable>
  /** Applies `f`; on save `f` is re-applied to the value then stored, so concurrent updates compose (counters). */
  readonly update: (f: (data: A) => A) => Effect.Effect<void, SessionUnavailable>
  /** Queues a one-shot message, readable through `flashes` on the next request only. */
  readonly flash: (key: string, message: string) => Effect.Effect<void, SessionUnavailable>
  /** The flash messages queued by the previous request (consumed by this one). */
  readonly flashes: Effect.Effect<Readonly<Record<string, string>>, SessionUnavailable>
  /**
   * Moves the session to a new key, keeping its data (call it on login, against session fixation). The old key
   * stays readable for `staleTimeout` so requests already in flight don't fail, then it is gone.
   */
  readonly regenerate: Effect.Effect<void, SessionUnavailable>
  /** Removes the session from the store and expires the cookie. Later changes in this request start a new one. */
  readonly destroy: Effect.Effect<void, SessionUnavailable>
  /** Persistent cookie (`Max-Age`) and the `remember` timeouts, or a browser-session cookie. */
  readonly rememberMe: (remember: boolean) => Effect.Effect<void, SessionUnavailable>
  /** Whether this request started without a live session. */
  readonly isNew: Effect.Effect<boolean, SessionUnavailable>
}

/**
 * Options of the middleware. Every duration is a `Duration.DurationInput`.
 *
 * @since 0.1.0
 */
export interface Options<A, I> {
  /** Schema of the session data; its encoded form must be JSON. */
  readonly schema: Schema.Schema<A, I>
  /** Data of a new session. */
  readonly initial: A
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
  /** How long a key replaced by `regenerate` stays readable. Default 10 seconds. */
  readonly staleTimeout?: Duration.DurationInput | undefined
}

/**
 * A configured middleware and the tag through which handlers reach the session.
 *
 * @since 0.1.0
 */
export interface SessionMiddleware<A> {
  readonly CurrentSession: Context.Tag<CurrentSession<A>, CurrentSession<A>>
  /**
   * Wraps an app (or, through `HttpRouter.use`, a router): works with `HttpServer.serve(sessions.middleware(app))`
   * and `router.pipe(HttpRouter.use(sessions.middleware))`.
   */
  readonly middleware: <E, R>(
    app: HttpApp.Default<E, R>
  ) => HttpApp.Default<E, Exclude<R, CurrentSession<A>> | SessionStore.SessionStore | HttpServerRequest.HttpServerRequest>
}

/** What is kept in the store, as JSON. */
interface Envelope {
  readonly v: 1
  /** The encoded data. */
  readonly d: unknown
  /** Flash messages for the next request. */
  readonly f: Record<string, string>
  /** Creation time (epoch ms), for the absolute timeout. */
  readonly c: number
  /** Remembered (persistent cookie)? */
  readonly r: boolean
  /** Rotated away by `regenerate`: readable until its stale period ends, never renewed. */
  readonly x?: true
}

type Op<A> =
  | { readonly _tag: "Patch"; readonly set: Record<string, unknown>; readonly deleted: ReadonlyArray<string> }
  | { readonly _tag: "Replace"; readonly data: A }
  | { readonly _tag: "Update"; readonly f: (data: A) => A }

const annotate = Effect.annotateLogs("service", "effect-session/SessionMiddleware")

/** Where a parse failed, without the values (session data may be personal, and logs travel far). */
const issuePaths = (error: ParseResult.ParseError): string =>
  [...new Set(ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => issue.path.join(".") || "(root)"))]
    .join(", ")

const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/** A positive duration option in milliseconds; `make` runs at start-up, so a bad one throws `InvalidConfig`. */
const millis = (option: string, input: Duration.DurationInput) => {
  const ms = finiteMillis(input)
  if (ms === undefined || ms <= 0) {
    throw new InvalidConfig({ option, reason: `must be a positive, finite duration, got ${String(input)}` })
  }
  return ms
}

/** Everything `make` derives from its options, validated. */
const configure = <A, I>(options: Options<A, I>) => {
  const attributes = SessionCookie.attributes(options.cookie)
  const cookieName = options.cookie?.name ?? "session"
  const violation = SessionCookie.prefixViolation(cookieName, attributes)
  if (violation !== undefined) throw new InvalidConfig({ option: "cookie", reason: violation })
  const renewalThreshold = options.renewalThreshold ?? 0.1
  if (!(renewalThreshold >= 0 && renewalThreshold <= 1)) {
    throw new InvalidConfig({ option: "renewalThreshold", reason: "must be a fraction between 0 and 1" })
  }
  const timeouts = {
    idle: millis("idleTimeout", options.idleTimeout ?? "30 minutes"),
    absolute: millis("absoluteTimeout", options.absoluteTimeout ?? "1 day")
  }
  const rememberTimeouts = {
    idle: millis("remember.idleTimeout", options.remember?.idleTimeout ?? "7 days"),
    absolute: millis("remember.absoluteTimeout", options.remember?.absoluteTimeout ?? "30 days")
  }
  const encode = Schema.encodeEither(options.schema)
  if (Either.isLeft(encode(options.initial))) {
    throw new InvalidConfig({ option: "initial", reason: "does not encode with the schema" })
  }
  return {
    attributes,
    cookieName,
    renewalThreshold,
    staleTimeout: millis("staleTimeout", options.staleTimeout ?? "10 seconds"),
    lifetime: (remember: boolean) => remember ? rememberTimeouts : timeouts,
    encode,
    decode: Schema.decodeUnknownEither(options.schema)
  }
}

/**
 * Builds the middleware. Options are checked at once: invalid ones throw `InvalidConfig` (at start-up, not per
 * request).
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServerResponse } from "@effect/platform"
 * import { Effect, Schema } from "effect"
 * import { SessionMiddleware } from "effect-session"
 *
 * const Sessions = SessionMiddleware.make({
 *   schema: Schema.Struct({ user: Schema.NullOr(Schema.String), visits: Schema.Number }),
 *   initial: { user: null, visits: 0 }
 * })
 *
 * const app = HttpRouter.empty.pipe(
 *   HttpRouter.get("/", Effect.gen(function* () {
 *     const session = yield* Sessions.CurrentSession
 *     yield* session.update((s) => ({ ...s, visits: s.visits + 1 }))
 *     return HttpServerResponse.text(`visits: ${(yield* session.get).visits}`)
 *   })),
 *   HttpRouter.use(Sessions.middleware)
 * )
 * ```
 *
 * @since 0.1.0
 */
export const make = <A, I>(options: Options<A, I>): SessionMiddleware<A> => {
  const config = configure(options)
  const CurrentSession = Context.GenericTag<CurrentSession<A>>(`effect-session/CurrentSession/${config.cookieName}`)

  const middleware = <E, R>(app: HttpApp.Default<E, R>) =>
    Effect.gen(function*() {
      const request = yield* Request.HttpServerRequest
      const store = yield* SessionStore.SessionStore
      const state = yield* load(store, SessionCookie.read(request.headers, config.cookieName))
      yield* App.appendPreResponseHandler((_, response) => save(store, state, response))
      return yield* Effect.provideService(app, CurrentSession, handle(state))
    })

  /** Per-request state. `loaded` is the stored session this request started from, if any. */
  interface State {
    /** When the request started (epoch ms): the creation time of a session it creates. */
    readonly startedAt: number
    loaded: Option.Option<
      { readonly key: SessionKey.SessionKey; readonly expiresAt: number; readonly stored: SessionStore.StoredSession }
    >
    unavailable: SessionStoreError | undefined
    data: A
    ops: Array<Op<A>>
    created: number
    remember: boolean
    rememberChanged: boolean
    incomingFlash: Record<string, string>
    outgoingFlash: Record<string, string>
    regenerate: boolean
    destroyed: Option.Option<SessionKey.SessionKey>
    /** The loaded session was rotated away by `regenerate` (its stale period is running). */
    rotated: boolean
  }

  const fresh = (now: number): State => ({
    startedAt: now,
    loaded: Option.none(),
    unavailable: undefined,
    data: options.initial,
    ops: [],
    created: now,
    remember: false,
    rememberChanged: false,
    incomingFlash: {},
    outgoingFlash: {},
    regenerate: false,
    destroyed: Option.none(),
    rotated: false
  })

  const parse = (value: string): Either.Either<{ envelope: Envelope; data: A }, string> => {
    let envelope: unknown
    try {
      envelope = JSON.parse(value)
    } catch {
      return Either.left("not JSON")
    }
    if (!isRecord(envelope) || envelope.v !== 1 || typeof envelope.c !== "number" || !isRecord(envelope.f)) {
      return Either.left("not a session envelope")
    }
    return Either.match(config.decode(envelope.d), {
      onLeft: (error) => Either.left(`data does not decode with the schema at ${issuePaths(error)}`),
      onRight: (data) => Either.right({ envelope: envelope as unknown as Envelope, data })
    })
  }

  const load = (store: SessionStore.Service, key: Option.Option<SessionKey.SessionKey>) =>
    Effect.gen(function*() {
      const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      const state = fresh(now)
      if (Option.isNone(key)) return state
      const found = yield* Effect.either(store.get(key.value))
      if (Either.isLeft(found)) {
        if (found.left._tag === "SessionStoreError") state.unavailable = found.left
        return state
      }
      const parsed = parse(found.right.value)
      if (Either.isLeft(parsed)) {
        yield* Effect.logWarning(`ignoring a stored session: ${parsed.left}`).pipe(annotate)
        return state
      }
      const { data, envelope } = parsed.right
      if (now > envelope.c + config.lifetime(envelope.r).absolute) return state
      state.loaded = Option.some({
        key: key.value,
        expiresAt: now + Duration.toMillis(found.right.expiresIn),
        stored: found.right
      })
      state.data = data
      state.created = envelope.c
      state.remember = envelope.r
      state.incomingFlash = envelope.f
      state.rotated = envelope.x === true
      return state
    })

  const handle = (state: State): CurrentSession<A> => {
    // `unavailable` is settled by `load`, before any handler runs.
    const unavailable = state.unavailable && Effect.fail(new SessionUnavailable({ cause: state.unavailable }))
    const guard = <X>(f: () => X): Effect.Effect<X, SessionUnavailable> => unavailable ?? Effect.sync(f)
    return {
      get: guard(() => state.data),
      set: (data) =>
        guard(() => {
          state.ops.push(patch(state.data, encodable(data)))
          state.data = data
        }),
      update: (f) =>
        guard(() => {
          state.data = encodable(f(state.data))
          state.ops.push({ _tag: "Update", f })
        }),
      flash: (key, message) => guard(() => void (state.outgoingFlash[key] = message)),
      flashes: guard(() => state.incomingFlash),
      regenerate: guard(() => void (state.regenerate = true)),
      destroy: guard(() => {
        const destroyed = Option.isSome(state.loaded) ? Option.some(state.loaded.value.key) : state.destroyed
        Object.assign(state, fresh(state.startedAt), { incomingFlash: state.incomingFlash, destroyed })
      }),
      rememberMe: (remember) =>
        guard(() => {
          state.rememberChanged = state.rememberChanged || remember !== state.remember
          state.remember = remember
        }),
      isNew: guard(() => Option.isNone(state.loaded))
    }
  }

  /** Data the schema cannot encode is a bug in the handler: it dies there, with the schema's message. */
  const encodable = (data: A): A => {
    const encoded = config.encode(data)
    if (Either.isLeft(encoded)) {
      throw new Error(`session data does not encode with the schema at ${issuePaths(encoded.left)}`)
    }
    return data
  }

  /** The top-level fields that changed, or the whole value when the data is not a record. */
  const patch = (before: A, after: A): Op<A> => {
    const encodedBefore = Either.getOrUndefined(config.encode(before))
    const encodedAfter = Either.getOrUndefined(config.encode(after))
    if (!isRecord(encodedBefore) || !isRecord(encodedAfter) || !isRecord(after)) return { _tag: "Replace", data: after }
    const set: Record<string, unknown> = {}
    for (const key of Object.keys(after)) {
      if (JSON.stringify(encodedAfter[key]) !== JSON.stringify(encodedBefore[key])) set[key] = after[key]
    }
    const deleted = Object.keys(encodedBefore).filter((key) => !(key in encodedAfter))
    return { _tag: "Patch", set, deleted }
  }

  const apply = (data: A, op: Op<A>): A => {
    switch (op._tag) {
      case "Replace":
        return op.data
      case "Update":
        return op.f(data)
      case "Patch": {
        if (!isRecord(data)) return data
        const next: Record<string, unknown> = { ...data, ...op.set }
        for (const key of op.deleted) delete next[key]
        return next as A
      }
    }
  }

  const serialize = (
    data: A,
    flash: Record<string, string>,
    created: number,
    remember: boolean,
    rotated = false
  ): string => {
    const envelope: Envelope = { v: 1, d: Either.getOrThrow(config.encode(data)), f: flash, c: created, r: remember }
    return JSON.stringify(rotated ? { ...envelope, x: true } : envelope)
  }

  /** The state as a new session's stored value. */
  const serializeState = (state: State) =>
    serialize(state.data, state.outgoingFlash, state.created, state.remember)

  /** This request's changes replayed onto a stored value (pure: `modify` may call it more than once). */
  const replay = (state: State, rotate: boolean) => (stored: string): string => {
    const parsed = parse(stored)
    if (Either.isLeft(parsed)) return serializeState(state)
    const { data, envelope } = parsed.right
    const flash = { ...envelope.f }
    for (const key of Object.keys(state.incomingFlash)) {
      if (flash[key] === state.incomingFlash[key]) delete flash[key]
    }
    Object.assign(flash, state.outgoingFlash)
    return serialize(
      state.ops.reduce(apply, data),
      flash,
      envelope.c,
      state.rememberChanged ? state.remember : envelope.r,
      rotate || envelope.x === true
    )
  }

  /**
   * What a request asks of the store at `now`: the expiry it is owed, whether its data changed, whether it consumed
   * flash messages, and whether the loaded session is due for renewal. Extending only when due keeps most writes
   * away from the indexed expires_at (HOT updates in PostgreSQL); a rotated session keeps its short stale expiry.
   */
  const pending = (state: State, now: number) => {
    const { absolute, idle } = config.lifetime(state.remember)
    const expiresAt = Math.min(now + idle, state.created + absolute)
    const renew = Option.isSome(state.loaded) && !state.rotated &&
      (state.rememberChanged || expiresAt - state.loaded.value.expiresAt > idle * config.renewalThreshold)
    return {
      expiresAt,
      renew,
      dirty: state.ops.length > 0 || Object.keys(state.outgoingFlash).length > 0 || state.rememberChanged,
      consumedFlash: Object.keys(state.incomingFlash).length > 0
    }
  }

  /** Whether the request leaves the store alone: nothing changed and no renewal due (the common case). */
  const untouched = (state: State): boolean => {
    if (state.unavailable !== undefined) return true
    if (state.regenerate || Option.isSome(state.destroyed)) return false
    const { consumedFlash, dirty, renew } = pending(state, state.startedAt)
    return Option.isNone(state.loaded) ? !dirty : !(dirty || consumedFlash || renew)
  }

  const save = (
    store: SessionStore.Service,
    state: State,
    response: HttpServerResponse.HttpServerResponse
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
    const withVary = HttpServerResponse.setHeader(response, "vary", SessionCookie.vary(response.headers))
    return untouched(state) ? Effect.succeed(withVary) : persist(store, state, response, withVary)
  }

  const persist = (
    store: SessionStore.Service,
    state: State,
    response: HttpServerResponse.HttpServerResponse,
    withVary: HttpServerResponse.HttpServerResponse
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
    Effect.gen(function*() {
      const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      const { consumedFlash, dirty, expiresAt, renew } = pending(state, now)
      const cookie = (key: string, maxAge: number | undefined) =>
        withVary.pipe(
          HttpServerResponse.mergeCookies(
            Cookies.fromIterable([SessionCookie.make(config.cookieName, key, config.attributes, maxAge)])
          ),
          HttpServerResponse.setHeader("cache-control", SessionCookie.privateCacheControl(response.headers))
        )
      const persistent = (at: number) => state.remember ? at - now : undefined

      if (Option.isSome(state.destroyed)) yield* store.clear(state.destroyed.value)

      if (Option.isNone(state.loaded)) {
        if (dirty && expiresAt > now) {
          const key = yield* store.generate({ value: serializeState(state), expiry: expiresAt - now })
          return cookie(key, persistent(expiresAt))
        }
        return Option.isSome(state.destroyed) ? cookie("", 0) : withVary
      }

      const { expiresAt: storedExpiry, key, stored } = state.loaded.value
      if (state.regenerate) {
        const stale = Math.min(config.staleTimeout, storedExpiry - now)
        const rotated = yield* store.modify(key, replay(state, true), { expiry: stale, from: stored }).pipe(
          Effect.map((value) => Either.getOrThrow(parse(value))),
          Effect.map(({ data, envelope }) => serialize(data, envelope.f, envelope.c, envelope.r)),
          Effect.catchTags({
            NotFound: () => Effect.succeed(serializeState(state)),
            Expired: () => Effect.succeed(serializeState(state))
          })
        )
        const fresh = yield* store.generate({ value: rotated, expiry: expiresAt - now })
        return cookie(fresh, persistent(expiresAt))
      }
      if (dirty || consumedFlash) {
        const expiry = renew ? expiresAt - now : undefined
        const written = yield* store.modify(key, replay(state, false), { expiry, from: stored })
          .pipe(
            Effect.as(true),
            Effect.catchTags({ NotFound: () => Effect.succeed(false), Expired: () => Effect.succeed(false) })
          )
        // Gone meanwhile (destroyed by a concurrent logout): never resurrect it.
        if (!written) return cookie("", 0)
        return renew && (state.remember || state.rememberChanged) ? cookie(key, persistent(expiresAt)) : withVary
      }
      if (renew) {
        const touched = yield* store.touch(key, { expiry: expiresAt - now }).pipe(
          Effect.as(true),
          Effect.catchTags({ NotFound: () => Effect.succeed(false), Expired: () => Effect.succeed(false) })
        )
        if (touched && state.remember) return cookie(key, persistent(expiresAt))
      }
      return withVary
    }).pipe(
      Effect.catchTags({
        SessionStoreError: (error) =>
          Effect.logError("could not save the session", error).pipe(
            annotate,
            Effect.zipRight(new SessionUnavailable({ cause: error })[HttpServerRespondable.symbol]())
          ),
        InvalidValue: (error) =>
          Effect.logError("could not save the session", error).pipe(
            annotate,
            Effect.as(HttpServerResponse.text("Internal Server Error", { status: 500 }))
          ),
        InvalidExpiry: (error) => Effect.die(error)
      })
    )

  return { CurrentSession, middleware }
}

