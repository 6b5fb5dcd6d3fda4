/**
 * The middleware's HTTP errors and how they render: `SessionUnavailable` (503) and `SessionConflict` (409), as text
 * or, for a request whose response was to be JSON (an HttpApi's), in their own JSON encoding.
 */
import { HttpServerRespondable, HttpServerResponse } from "effect/http"
import { Effect, Schema } from "effect"
import { CsrfTokenInvalid } from "../CsrfProtection.js"

const unavailableMessage = "sessions are temporarily unavailable"

/** Headers of every 503: when to come back, and not to cache it. */
export const retryAfter = { "retry-after": "5", "cache-control": "no-store" }

const noStore = { "cache-control": "no-store" }

/**
 * The session store could not be reached (or did not answer within its deadline) while loading or saving the
 * session. Handlers can `catchTag` it; otherwise it renders as `503 Service Unavailable` with `Retry-After` (never
 * as a silently empty session). Encoded (in an HttpApi response), it says only that sessions are temporarily
 * unavailable: the store failure behind it is kept in `cause`, which is never encoded.
 */
export class SessionUnavailable extends Schema.TaggedError<SessionUnavailable>("effect-session/SessionUnavailable")("SessionUnavailable", {
  message: Schema.Literal(unavailableMessage).pipe(Schema.withConstructorDefault(Effect.succeed(unavailableMessage)))
}, { httpApiStatus: 503, description: "Sessions are temporarily unavailable; retry later" })
  implements HttpServerRespondable.Respondable
{
  /** The error for a store failure, which it keeps as its (never encoded) `cause`. */
  static because(cause: unknown): SessionUnavailable {
    const error = new SessionUnavailable()
    Object.defineProperty(error, "cause", { value: cause, enumerable: false, configurable: true, writable: true })
    return error
  }
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(unavailableResponse(false))
  }
}

/**
 * A write to the session was refused, and nothing of it was stored:
 * - `"Rotated"`: the request's key was rotated away (by a login, usually in another request): it is read-only
 *   until its stale period ends, so a key planted before a login can never change the logged-in session;
 * - `"Ended"`: the session ended (destroyed, revoked or expired) while the request ran.
 *
 * Handlers can `catchTag` it; otherwise it renders as `409 Conflict`.
 */
export class SessionConflict extends Schema.TaggedError<SessionConflict>("effect-session/SessionConflict")("SessionConflict", {
  reason: Schema.Literals(["Rotated", "Ended"])
}, { httpApiStatus: 409, description: "The session changed under the request; nothing was stored" })
  implements HttpServerRespondable.Respondable
{
  override get message() {
    return this.reason === "Rotated"
      ? "this session key was replaced (for example by a login); the change was not applied"
      : "this session ended while the request ran; the change was not applied"
  }
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(conflictResponse(this, false))
  }
}

/**
 * The session data a handler set is larger than the middleware's `maxBytes` (as encoded JSON), or, in the sealed
 * mode (`limit: "cookie"`), would make the session's `Set-Cookie` line longer than the 4096 bytes browsers keep:
 * nothing of it was applied. Handlers can `catchTag` it; otherwise it renders as `413 Content Too Large`.
 */
export class SessionTooLarge extends Schema.TaggedError<SessionTooLarge>("effect-session/SessionTooLarge")(
  "SessionTooLarge",
  {
    bytes: Schema.Number,
    maxBytes: Schema.Number,
    /** What was measured: the encoded data (server side) or the sealed cookie's `Set-Cookie` line. */
    limit: Schema.Literals(["data", "cookie"]).pipe(Schema.withConstructorDefault(Effect.succeed("data" as const)))
  },
  { httpApiStatus: 413, description: "The session data would exceed its size limit" }
) implements HttpServerRespondable.Respondable {
  override get message() {
    return this.limit === "cookie"
      ? `the sealed session cookie would take ${this.bytes} bytes of Set-Cookie, over the ${this.maxBytes} browsers keep`
      : `session data of ${this.bytes} bytes exceeds the maximum of ${this.maxBytes} bytes`
  }
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(HttpServerResponse.text(`Content Too Large: ${this.message}`, { status: 413, headers: noStore }))
  }
}

/**
 * The stored session no longer decodes with the session's schema (and `migrate` could not make it), and the
 * middleware's `onUndecodable` is `"fail"`: the request fails before its handler, as `500`, saying only that.
 */
export class SessionUndecodable extends Schema.TaggedError<SessionUndecodable>("effect-session/SessionUndecodable")(
  "SessionUndecodable",
  { reason: Schema.String },
  { httpApiStatus: 500, description: "The stored session does not decode with the current schema" }
) implements HttpServerRespondable.Respondable {
  override get message() {
    return `the stored session does not decode with the current schema: ${this.reason}`
  }
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(HttpServerResponse.text("Internal Server Error", { status: 500, headers: noStore }))
  }
}

/** What an HttpApi endpoint that uses the session can fail with. */
export const ApiErrors = [
  SessionUnavailable,
  SessionConflict,
  SessionTooLarge,
  SessionUndecodable,
  CsrfTokenInvalid
] as const

/** What an HttpApi endpoint that uses a sealed-cookie session can fail with: no store, so no 503 and no 409. */
export const SealedApiErrors = [SessionTooLarge, SessionUndecodable, CsrfTokenInvalid] as const

/** The 503, as text or in the error's own JSON encoding. */
export const unavailableResponse = (json: boolean): HttpServerResponse.HttpServerResponse =>
  json
    ? HttpServerResponse.jsonUnsafe({ _tag: "SessionUnavailable", message: unavailableMessage }, {
      status: 503,
      headers: retryAfter
    })
    : HttpServerResponse.text(`Service Unavailable: ${unavailableMessage}`, { status: 503, headers: retryAfter })

/** The 409 of `conflict`, as text or in its own JSON encoding. */
export const conflictResponse = (conflict: SessionConflict, json: boolean): HttpServerResponse.HttpServerResponse =>
  json
    ? HttpServerResponse.jsonUnsafe({ _tag: conflict._tag, reason: conflict.reason }, { status: 409, headers: noStore })
    : HttpServerResponse.text(`Conflict: ${conflict.message}`, { status: 409, headers: noStore })

/** A 500 for what the app got wrong (a value the store refused) or a defect: the details go to the log. */
export const internalError = HttpServerResponse.text("Internal Server Error", { status: 500 })

/** Whether a response is JSON (`application/json`, `application/problem+json`, ...). */
export const isJson = (response: HttpServerResponse.HttpServerResponse): boolean => {
  const type = response.headers["content-type"] ?? ("contentType" in response.body ? response.body.contentType : "")
  return /^application\/(?:[\w.-]+\+)?json\s*(?:;|$)/i.test(type ?? "")
}
