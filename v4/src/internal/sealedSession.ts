/**
 * One request's session in the sealed-cookie mode: its settings (the middleware's, with the sealing keys), the load
 * (the cookie opened, its sealed expiry and absolute timeout checked), the handlers' view (the shared one, whose
 * size limit is the cookie's) and the save (the shared plan, carried out as a new seal). There is no store: nothing
 * can be unavailable or conflict, and nothing on the server knows a session, so none can be listed or revoked.
 */
import { Cookies, type Headers, HttpEffect, type HttpServerRequest, type HttpServerResponse } from "effect/http"
import { Effect, Result } from "effect"
import { type CsrfTokenInvalid, isSafeMethod } from "../CsrfProtection.js"
import { InvalidConfig } from "../SessionError.js"
import * as Envelope from "./envelope.js"
import { SessionTooLarge, type SessionUndecodable } from "./httpErrors.js"
import type { Definition, Options, SealedOptions, SealedSession } from "./middlewareModel.js"
import * as MiddlewareSettings from "./middlewareSettings.js"
import * as Observability from "./observability.js"
import * as RequestState from "./requestState.js"
import { decodeEnvelope, outlived, verifyToken, warnIfInsecure } from "./requestSession.js"
import * as SealedCookie from "./sealedCookie.js"
import * as SessionCookie from "./sessionCookie.js"
import { frame, maxAgeOf, setCookie } from "./sessionSave.js"
import { SessionView } from "./sessionView.js"

/**
 * The most a session's `Set-Cookie` line (name, value and attributes) may take: RFC 6265 §6.1's minimum that every
 * browser keeps. Beyond it browsers drop the cookie without a word.
 */
export const maxSetCookieBytes = 4096

/** The validated settings of a sealed-cookie middleware. */
export interface SealedResolved<A> extends MiddlewareSettings.Resolved<A> {
  readonly keys: SealedCookie.Keys
  /** Bytes of the `Set-Cookie` line but its value, at its longest (with a remembered session's `Max-Age`). */
  readonly cookieOverhead: number
}

/** Validates the options: the middleware's (cookie, timeouts, CSRF, data), then the secrets, the keys derived. */
export const configure = <A, I>(definition: Definition<A, I>, options: SealedOptions) =>
  Effect.gen(function*() {
    const { cookie, secrets, ...rest } = options ?? {}
    // The cookie is sealed, not signed: signing secrets, if any were slipped in, are not taken.
    const { secrets: _signing, ...attributes }: NonNullable<Options["cookie"]> = cookie ?? {}
    const resolved = yield* MiddlewareSettings.configure(definition, { ...rest, cookie: attributes })
    if (!Array.isArray(secrets) || secrets.length === 0) {
      return yield* new InvalidConfig({ option: "secrets", reason: "at least one secret is required to seal cookies" })
    }
    const keys = SealedCookie.deriveKeys(yield* Effect.fromResult(MiddlewareSettings.secretsOf(secrets, "secrets")))
    const { normal, remembered } = resolved.policy
    const longest = SessionCookie.make(resolved.cookieName, "", resolved.attributes, Math.max(normal.absolute, remembered.absolute))
    const cookieOverhead = Buffer.byteLength(Cookies.toSetCookieHeaders(Cookies.fromIterable([longest]))[0]!, "utf8")
    const settings: SealedResolved<A> = { ...resolved, keys, cookieOverhead }
    return settings
  })

/** A CSRF secret's length (32 bytes, base64url), reserved while a session has none: `csrfToken` may add one. */
const reservedCsrf = "x".repeat(43)
/** The longest expiry sealed (13 digits, until the year 2286). */
const reservedExpiry = 9_999_999_999_999

/**
 * The bytes of the `Set-Cookie` line of the draft holding data encoded as `encoded`, at its longest: with a CSRF
 * secret and a remembered session's `Max-Age` whether or not it has them yet, so nothing later in the request (a
 * token, `rememberMe`, a login) can push a session that fit over the limit. GCM adds no padding: the length of the
 * sealed value follows from the plaintext's without sealing it.
 */
export const setCookieBytes = <A>(settings: SealedResolved<A>, draft: RequestState.Draft<A>, encoded: unknown): number => {
  const envelope = Envelope.make(encoded, draft.flashOut, draft.created, draft.remember, draft.csrf ?? reservedCsrf)
  const plaintext = SealedCookie.payload(reservedExpiry, Envelope.encode(envelope))
  return settings.cookieOverhead + SealedCookie.sealedLength(Buffer.byteLength(plaintext, "utf8"))
}

/** The sealed mode's request state: `key` is the sealed cookie as sent, `stored` what it opened to. */
type State<A> = RequestState.RequestState<A, string, SealedCookie.Payload>

/** What a sent cookie opens to, unless it is no session: unsealable, or past its sealed expiry. */
export const opened = <A>(
  settings: SealedResolved<A>,
  value: string,
  now: number
): Result.Result<SealedCookie.Payload, SessionCookie.Rejection> =>
  Result.flatMap(SealedCookie.open(settings.keys, settings.cookieName, value), (plaintext) => {
    const payload = SealedCookie.parsePayload(plaintext)
    if (payload === undefined) return Result.fail("malformed")
    // The cookie's own Max-Age is the browser's business: the sealed expiry decides.
    return now > payload.expiresAt ? Result.fail("expired") : Result.succeed(payload)
  })

/** The request's session, from its cookie alone, and why a cookie that came was not one (if it was not). */
const load = <A>(
  settings: SealedResolved<A>,
  headers: Headers.Headers,
  now: number
): Effect.Effect<{ readonly state: State<A>; readonly rejected: SessionCookie.Rejection | undefined }, SessionUndecodable> => {
  const none = (rejected?: SessionCookie.Rejection) => ({
    state: { startedAt: now, origin: { _tag: "None" }, draft: RequestState.emptyDraft(settings.initial, now), fate: { _tag: "Keep" } } as State<A>,
    rejected
  })
  const sent = SessionCookie.find(headers, settings.cookieName)
  if (sent.value === undefined) return Effect.succeed(none(sent.rejected))
  const key = sent.value
  const payload = opened(settings, key, now)
  if (Result.isFailure(payload)) return Effect.succeed(none(payload.failure))
  const stored = payload.success
  return Effect.map(decodeEnvelope(settings, stored.envelope, now), (decoded) => {
    if (decoded === undefined) return none()
    if (outlived(settings, decoded.envelope, now)) return none("expired")
    const draft = RequestState.loadedDraft(decoded.data, decoded.envelope, stored.envelope)
    const state: State<A> = {
      startedAt: now,
      origin: { _tag: "Live", key, stored, expiresAt: stored.expiresAt },
      draft,
      fate: { _tag: "Keep" }
    }
    return { state, rejected: undefined }
  })
}

/** The handlers' view: the shared one, with the cookie's size as its limit, and a `flash` that keeps within it. */
class SealedRequestSession<A>
  extends SessionView<A, string, SealedCookie.Payload, never, never>
  implements SealedSession<A>
{
  readonly #sealed: SealedResolved<A>

  constructor(settings: SealedResolved<A>, state: State<A>) {
    super(settings, state, undefined)
    this.#sealed = settings
  }

  /** Never called: a sealed session has no rotated key to write through. */
  protected refused(): Effect.Effect<never> {
    return Effect.die(new Error("a sealed session has no rotated key"))
  }
  protected tooLarge(_: A, encoded: unknown): SessionTooLarge | undefined {
    const bytes = setCookieBytes(this.#sealed, this.current.draft, encoded)
    return bytes > maxSetCookieBytes ? new SessionTooLarge({ bytes, maxBytes: maxSetCookieBytes, limit: "cookie" }) : undefined
  }

  readonly flash = (key: string, message: string): Effect.Effect<void, SessionTooLarge> =>
    Effect.flatten(this.write(() => {
      const { flashOut } = this.current.draft
      const before = flashOut[key]
      flashOut[key] = message
      const error = this.tooLarge(this.current.draft.data, this.encodedDraft())
      if (error === undefined) return Effect.void
      if (before === undefined) delete flashOut[key]
      else flashOut[key] = before
      return Effect.fail(error)
    }))
}

/** `envelope` sealed with `expiresAt` into a cookie value, if its `Set-Cookie` line fits. */
export const sealed = <A>(settings: SealedResolved<A>, envelope: Envelope.Envelope, expiresAt: number): Result.Result<string, SessionTooLarge> => {
  const value = SealedCookie.seal(settings.keys, settings.cookieName, SealedCookie.payload(expiresAt, Envelope.encode(envelope)))
  const bytes = settings.cookieOverhead + value.length
  return bytes > maxSetCookieBytes
    ? Result.fail(new SessionTooLarge({ bytes, maxBytes: maxSetCookieBytes, limit: "cookie" }))
    : Result.succeed(value)
}

/** Carries out the plan: every change, renewal or rotation is a new seal; `destroy` expires the cookie. */
const execute = <A>(
  settings: SealedResolved<A>,
  state: State<A>,
  plan: Exclude<RequestState.Plan<string>, { readonly _tag: "Skip" }>,
  response: HttpServerResponse.HttpServerResponse,
  now: number
): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  const { draft, origin } = state
  const seal = (envelope: Envelope.Envelope, expiresAt: number) =>
    Result.match(sealed(settings, envelope, expiresAt), {
      onSuccess: (value) => Effect.succeed(setCookie(settings, response, value, maxAgeOf(draft, expiresAt, now))),
      // Only data that `migrate` grew, or a longer cookie name since, gets here (handlers' changes were measured):
      // a cookie that browsers would drop is not sent; the one the request came with stays.
      onFailure: (error) => Effect.as(settings.logFailure("session save", error), response)
    })
  /** The draft onto what the cookie held: nothing is decoded again (the loaded value is the draft's). */
  const replayed = () =>
    origin._tag === "Live" ? RequestState.replay(draft, settings.codec)(origin.stored.envelope).envelope : RequestState.toEnvelope(draft, settings.codec)
  switch (plan._tag) {
    case "Create":
      return Effect.andThen(Observability.count(Observability.sessionsCreated), seal(RequestState.toEnvelope(draft, settings.codec), plan.expiresAt))
    case "Clear":
      return Effect.as(Observability.count(Observability.sessionsDestroyed), setCookie(settings, response, "", 0))
    case "SetSubject": // never planned: the sealed view cannot set a subject
      return Effect.succeed(response)
    case "Touch":
      return seal(replayed(), plan.expiresAt)
    case "Write":
      return seal(replayed(), plan.expiresAt ?? (origin._tag === "Live" ? origin.expiresAt : now))
    case "Rotate":
      return Effect.andThen(Observability.count(Observability.sessionsRotated), seal(replayed(), plan.expiresAt))
  }
}

/**
 * Opens the request's session from its cookie, checks its CSRF token (when tokens are on), and arranges for it to
 * be sealed into the response's cookie; returns the handlers' view. A rejected cookie (malformed, forged, expired,
 * duplicated) is no session, counted by reason; a request refused by the check saves nothing.
 */
export const sealedSession = <A>(
  settings: SealedResolved<A>,
  request: HttpServerRequest.HttpServerRequest
): Effect.Effect<SealedSession<A>, CsrfTokenInvalid | SessionUndecodable, HttpServerRequest.HttpServerRequest> =>
  Effect.clockWith((clock) => {
    const loading = Observability.middlewareSpan("load", load(settings, request.headers, clock.currentTimeMillisUnsafe()), (loaded) => ({
      "session.origin": loaded.state.origin._tag,
      "session.cookie": loaded.rejected ?? (loaded.state.origin._tag === "Live" ? "present" : "absent")
    }))
    return Effect.flatMap(Effect.andThen(warnIfInsecure(settings, request), loading), ({ rejected, state }) => {
      const carrier = settings.csrf
      const checked = carrier === undefined || isSafeMethod(request.method) || state.origin._tag === "None"
        ? Effect.void
        : verifyToken(carrier, request, state.draft.csrf)
      return Effect.andThen(
        rejected === undefined ? Effect.void : Observability.count(Observability.cookiesRejected, 1, ["reason", rejected]),
        checked
      ).pipe(
        Effect.andThen(HttpEffect.appendPreResponseHandler((_, response) =>
          frame(settings, state, response, (plan, current, now) => execute(settings, state, plan, current, now))
        )),
        Effect.as(new SealedRequestSession(settings, state))
      )
    })
  })
