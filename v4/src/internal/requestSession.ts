/**
 * One request's session: loading it (no cookie costs nothing, a cookie one `get`), checking its CSRF token when
 * tokens are on, and the handlers' view of it, whose changes the save applies (see `sessionSave.ts`).
 */
import { HttpEffect, type HttpServerRequest } from "effect/http"
import { Duration, Effect, Option, Result } from "effect"
import { CsrfTokenInvalid, isSafeMethod } from "../CsrfProtection.js"
import type { InvalidSubject } from "../SessionError.js"
import type * as SessionKey from "../SessionKey.js"
import type * as SessionStore from "../SessionStore.js"
import * as CsrfToken from "./csrfToken.js"
import * as Envelope from "./envelope.js"
import { SessionConflict, SessionTooLarge, SessionUndecodable, SessionUnavailable } from "./httpErrors.js"
import type { CurrentSession } from "./middlewareModel.js"
import type { Resolved } from "./middlewareSettings.js"
import * as Observability from "./observability.js"
import * as OwnerCheck from "./owner.js"
import * as Renewal from "./renewal.js"
import * as RequestState from "./requestState.js"
import * as SessionCookie from "./sessionCookie.js"
import { save } from "./sessionSave.js"
import { SessionView } from "./sessionView.js"

/** The stored envelope and its data: decoded with the schema, or after `migrate`; else why not. */
const decodeStored = <A>(settings: Resolved<A>, value: string) =>
  Result.flatMap(Envelope.decode(value), (envelope) => {
    const decoded = settings.codec.decode(envelope.d)
    if (Result.isSuccess(decoded) || settings.migrate === undefined) {
      return Result.map(decoded, (data) => ({ envelope, data }))
    }
    // A migrated session is stored in its new form by the next write (the envelope carries the migrated data).
    let migrated: unknown
    try {
      migrated = settings.migrate(envelope.d)
    } catch {
      return Result.fail("migrate threw")
    }
    return Result.map(settings.codec.decode(migrated), (data) => ({ envelope: { ...envelope, d: migrated }, data }))
  })

/** How long one reason an undecodable session was ignored for is logged once (a deploy makes every request hit it). */
const ignoredLogWindow = 10_000

/** Logs that a stored session was ignored, and why (never the data): once per reason per window, not per request. */
const ignored = <A>(settings: Resolved<A>, reason: string, now: number): Effect.Effect<void> => {
  const until = settings.warnings.ignored.get(reason)
  if (until !== undefined && now < until) return Effect.void
  settings.warnings.ignored.set(reason, now + ignoredLogWindow)
  return Effect.logWarning(`ignoring a stored session: ${reason}`).pipe(
    Effect.annotateLogs("service", "effect-session/SessionMiddleware")
  )
}

/**
 * The envelope and data of a session's stored `value` (server side, a row; sealed, what the cookie opened to):
 * `undefined` when it counts as no session because it does not decode and `onUndecodable` is `"reset"` (logged).
 */
export const decodeEnvelope = <A>(
  settings: Resolved<A>,
  value: string,
  now: number
): Effect.Effect<{ readonly envelope: Envelope.Envelope; readonly data: A } | undefined, SessionUndecodable> => {
  const parsed = decodeStored(settings, value)
  if (Result.isSuccess(parsed)) return Effect.succeed(parsed.success)
  const error = new SessionUndecodable({ reason: parsed.failure })
  return settings.onUndecodable === "fail"
    ? Effect.andThen(settings.logFailure("session load", error), Effect.fail(error))
    : Effect.as(ignored(settings, parsed.failure, now), undefined)
}

/** Whether a session has outlived its absolute timeout at `now` (exactly at the limit is still valid). */
export const outlived = <A>(settings: Resolved<A>, envelope: Envelope.Envelope, now: number): boolean =>
  Renewal.outlived(Renewal.lifetime(settings.policy, envelope.r), envelope.c, now)

/**
 * The state of a request that loaded the stored `value` of `key`: `undefined` when it counts as no session (it
 * outlived its absolute timeout, or does not decode and `onUndecodable` is `"reset"`).
 */
const loaded = <A>(
  settings: Resolved<A>,
  key: SessionKey.SessionKey,
  stored: SessionStore.StoredSession,
  now: number
): Effect.Effect<RequestState.RequestState<A> | undefined, SessionUndecodable> =>
  Effect.map(decodeEnvelope(settings, stored.value, now), (decoded): RequestState.RequestState<A> | undefined => {
    if (decoded === undefined || outlived(settings, decoded.envelope, now)) return undefined
    const { data, envelope } = decoded
    // Migrated data is stored in its new form by the request's next write.
    const draft = RequestState.loadedDraft(data, envelope, stored.value)
    return stored.rotated || envelope.x === true
      // Its flash messages moved with the session to the new key.
      ? { startedAt: now, origin: { _tag: "Stale", key }, draft: { ...draft, flashIn: {} }, fate: { _tag: "Keep" } }
      : {
        startedAt: now,
        origin: { _tag: "Live", key, stored, expiresAt: now + Duration.toMillis(stored.expiresIn) },
        draft,
        fate: { _tag: "Keep" }
      }
  })

/** Reads the request's session: no cookie costs nothing; a cookie costs one `get`. */
const load = <A>(
  settings: Resolved<A>,
  store: SessionStore.Service,
  key: Option.Option<SessionKey.SessionKey>
): Effect.Effect<RequestState.RequestState<A>, SessionUndecodable> =>
  Effect.clockWith((clock) => {
    const now = clock.currentTimeMillisUnsafe()
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
      onSuccess: (stored) => Effect.map(loaded(settings, key.value, stored, now), (state) => state ?? fresh())
    })
  })

/**
 * The CSRF check of a state-changing request that comes with a session, when tokens are on: the token it carries
 * must be a masking of the session's secret. A session that could not be loaded cannot vouch for one. A request
 * without a session has none to ride (its forgery, a login CSRF, is the cross-origin guard's to refuse).
 */
const checkToken = <A>(
  settings: Resolved<A>,
  request: HttpServerRequest.HttpServerRequest,
  state: RequestState.RequestState<A>
): Effect.Effect<void, CsrfTokenInvalid | SessionUnavailable> => {
  const carrier = settings.csrf
  if (carrier === undefined || isSafeMethod(request.method) || state.origin._tag === "None") return Effect.void
  if (state.origin._tag === "Unavailable") return Effect.fail(SessionUnavailable.because(state.origin.error))
  return verifyToken(carrier, request, state.draft.csrf)
}

/**
 * Whether the state-changing `request` carries a token of the session whose CSRF secret is `secret` (none made
 * yet: no token can match); refused and counted if not.
 */
export const verifyToken = (
  carrier: CsrfToken.Carrier,
  request: HttpServerRequest.HttpServerRequest,
  secret: string | undefined
): Effect.Effect<void, CsrfTokenInvalid> =>
  Effect.flatMap(CsrfToken.carried(request, carrier), (token) => {
    if (Option.isSome(token) && secret !== undefined && CsrfToken.matches(token.value, secret)) return Effect.void
    const reason = Option.isNone(token) ? "Missing" : "Mismatch"
    return Effect.andThen(
      Observability.count(Observability.csrfRefused, 1, ["reason", `token ${reason}`]),
      Effect.fail(new CsrfTokenInvalid({ reason }))
    )
  })

/** Hosts a browser accepts a Secure cookie from over plain HTTP. */
const localHost = /^(?:localhost|[^:]+\.localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/i

/** Whether the request came over plain HTTP (by its proxy's word, or its socket), when that can be told. */
const overPlainHttp = (request: HttpServerRequest.HttpServerRequest) => {
  const forwarded = request.headers["x-forwarded-proto"]
  if (forwarded !== undefined) return forwarded.split(",")[0]!.trim().toLowerCase() === "http"
  const socket = (request as { readonly source?: { readonly socket?: { readonly encrypted?: boolean } } }).source?.socket
  return socket !== undefined && socket.encrypted !== true
}

/**
 * Once per middleware: a Secure cookie set over plain HTTP to a host other than localhost is dropped by the
 * browser, so every request looks logged out. Says so, and what to configure.
 */
export const warnIfInsecure = <A>(settings: Resolved<A>, request: HttpServerRequest.HttpServerRequest): Effect.Effect<void> => {
  if (!settings.attributes.secure || settings.warnings.insecureRequest) return Effect.void
  const host = request.headers["host"] ?? ""
  if (localHost.test(host) || !overPlainHttp(request)) return Effect.void
  settings.warnings.insecureRequest = true
  const shown = host.replace(/[^\w.:[\]-]/g, "?").slice(0, 100)
  return Effect.logWarning(
    `a request to http://${shown} came over plain HTTP, but the session cookie is Secure: browsers drop it, so every ` +
      `request will look logged out. In development over HTTP, configure cookie: { secure: false } (the cookie is ` +
      `then named "session"); in production serve HTTPS (behind a proxy, have it send X-Forwarded-Proto: https).`
  ).pipe(Effect.annotateLogs("service", "effect-session/SessionMiddleware"))
}

/**
 * Loads the request's session, checks its CSRF token, and arranges for it to be saved with the response; returns
 * the handlers' view. A request refused by the check never reaches its handler and saves nothing.
 */
export const requestSession = <A>(
  settings: Resolved<A>,
  store: SessionStore.Service,
  request: HttpServerRequest.HttpServerRequest
): Effect.Effect<
  CurrentSession<A>,
  CsrfTokenInvalid | SessionUnavailable | SessionUndecodable,
  HttpServerRequest.HttpServerRequest
> => {
  const cookie = SessionCookie.inspect(request.headers, settings.cookieName, settings.secrets)
  const loading = Observability.middlewareSpan("load", load(settings, store, cookie.key), (state) => ({
    "session.origin": state.origin._tag,
    "session.cookie": cookie.rejected ?? (Option.isSome(cookie.key) ? "present" : "absent")
  }))
  const checked = Effect.andThen(warnIfInsecure(settings, request), loading)
  return Effect.flatMap(
    cookie.rejected === undefined
      ? checked
      : Effect.andThen(Observability.count(Observability.cookiesRejected, 1, ["reason", cookie.rejected]), checked),
    (state) =>
      checkToken(settings, request, state).pipe(
        Effect.andThen(HttpEffect.appendPreResponseHandler((_, response) => save(settings, store, state, response))),
        Effect.as(new RequestSession(settings, store, state))
      )
  )
}

/**
 * The handlers' view of the request's session, server side: the shared view, with `flash`, the data size limit
 * (`maxBytes`), and the subject and its sessions, which the store answers.
 */
class RequestSession<A>
  extends SessionView<A, SessionKey.SessionKey, SessionStore.StoredSession, SessionUnavailable, SessionConflict>
  implements CurrentSession<A>
{
  readonly #store: SessionStore.Service

  constructor(settings: Resolved<A>, store: SessionStore.Service, state: RequestState.RequestState<A>) {
    super(settings, state, state.origin._tag === "Unavailable" ? Effect.fail(SessionUnavailable.because(state.origin.error)) : undefined)
    this.#store = store
  }

  /** A write through a rotated key: refused (and only then is the error, with its stack trace, made). */
  protected refused(): Effect.Effect<never, SessionConflict> {
    return Effect.andThen(
      Observability.count(Observability.writesRefused, 1, ["reason", "Rotated"]),
      Effect.failSync(() => new SessionConflict({ reason: "Rotated" }))
    )
  }
  /** Data over `maxBytes`, as encoded JSON. */
  protected tooLarge(_: A, encoded: unknown): SessionTooLarge | undefined {
    const bytes = Buffer.byteLength(JSON.stringify(encoded) ?? "", "utf8")
    const { maxBytes } = this.settings
    return bytes > maxBytes ? new SessionTooLarge({ bytes, maxBytes }) : undefined
  }
  /** The subject as this request sees it: a pending `setSubject`, else the stored one. */
  #currentSubject(): string | null {
    const { draft, origin } = this.current
    return draft.owner !== undefined
      ? draft.owner.subject ?? null
      : origin._tag === "Live" ? origin.stored.subject : null
  }
  /** The public id of the request's live session, if it has one. */
  #currentId(): string | undefined {
    return this.current.origin._tag === "Live" ? this.current.origin.stored.id : undefined
  }
  /** An action on the subject's other sessions: refused through a stale key; store failures are 503s. */
  #stateful<X>(f: () => Effect.Effect<X, unknown>): Effect.Effect<X, SessionUnavailable | SessionConflict> {
    return this.unavailable ??
      Effect.suspend((): Effect.Effect<X, SessionUnavailable | SessionConflict> =>
        this.current.origin._tag === "Stale"
          ? this.refused()
          : Effect.catch(f(), (error) => Effect.fail(SessionUnavailable.because(error)))
      )
  }

  readonly flash = (key: string, message: string) => this.write(() => void (this.current.draft.flashOut[key] = message))
  get isRotated() {
    return this.read(() => this.current.origin._tag === "Stale")
  }
  get subject() {
    return this.read(() => Option.fromNullishOr(this.#currentSubject()))
  }
  readonly setSubject = (
    subject: string | null,
    options: Omit<SessionStore.Owner, "subject"> = {}
  ): Effect.Effect<void, SessionUnavailable | SessionConflict | InvalidSubject> =>
    Effect.flatMap(
      Effect.fromResult(OwnerCheck.stored({ ...options, subject })),
      () => this.write(() => void (this.current.draft.owner = { ...options, subject }))
    )
  get sessions() {
    return this.unavailable ?? Effect.suspend(() => {
      const subject = this.#currentSubject()
      if (subject === null || this.current.origin._tag === "Stale") return Effect.succeed([])
      const currentId = this.#currentId()
      return this.#store.list(subject).pipe(
        Effect.map((sessions) => sessions.map((info) => ({ ...info, current: info.id === currentId }))),
        Effect.catch((error) => Effect.fail(SessionUnavailable.because(error)))
      )
    })
  }
  readonly revoke = (id: string) =>
    this.#stateful(() => {
      const subject = this.#currentSubject()
      if (id === this.#currentId()) {
        this.endCurrent()
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
      if (options.keepCurrent !== true) this.endCurrent()
      return others
    })
}
