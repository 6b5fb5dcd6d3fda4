/**
 * The save of one request's session, in its pre-response handler: the pure plan (`RequestState.plan`) carried out
 * against the store, the cookie set. It cannot fail or hang: a store failure becomes a 503, a refused write a 409
 * (one table below says which refusal is which), anything unexpected a logged 500.
 */
import { Cookies, HttpServerResponse } from "effect/http"
import { DateTime, Effect, Schema } from "effect"
import type * as SessionStore from "../SessionStore.js"
import * as Envelope from "./envelope.js"
import {
  conflictResponse,
  internalError,
  isJson,
  retryAfter,
  SessionConflict,
  unavailableResponse
} from "./httpErrors.js"
import type { Resolved } from "./middlewareSettings.js"
import * as Observability from "./observability.js"
import * as RequestState from "./requestState.js"
import * as SessionCookie from "./sessionCookie.js"

/** Why a request's session changes were not saved: its response was a server error. For the log line. */
class FailedRequest extends Schema.TaggedError<FailedRequest>("effect-session/FailedRequest")("FailedRequest", { status: Schema.Number }) {
  override get message() {
    return `the response was ${this.status}: the request's session changes were discarded`
  }
}

/** The response with `Vary: Cookie` (kept, or added to what it varies by). */
export const withVary = (response: HttpServerResponse.HttpServerResponse) =>
  HttpServerResponse.setHeader(response, "vary", SessionCookie.vary(response.headers))

/** What a write the store refused means for the request: its session ended, or its key was rotated away. */
const refusals = { NotFound: "Ended", Expired: "Ended", Rotated: "Rotated" } as const

type Refusal = keyof typeof refusals

/** One save: its settings, store, state and the response so far, and the time it runs at. */
interface Save<A> {
  readonly settings: Resolved<A>
  readonly store: SessionStore.Service
  readonly state: RequestState.RequestState<A>
  readonly response: HttpServerResponse.HttpServerResponse
  readonly now: number
  /** Whether the handler's response was JSON: a failed save then answers in JSON too. */
  readonly json: boolean
}

/** The response with the session cookie's value set (deleted when empty), uncacheable. Both modes set it so. */
export const setCookie = <A>(
  settings: Resolved<A>,
  from: HttpServerResponse.HttpServerResponse,
  value: string,
  maxAge: number | undefined
) =>
  from.pipe(
    HttpServerResponse.mergeCookies(Cookies.fromIterable([
      SessionCookie.make(settings.cookieName, value, settings.attributes, maxAge)
    ])),
    HttpServerResponse.setHeader("cache-control", SessionCookie.privateCacheControl(from.headers))
  )

/** The response with the session cookie set to `key` (signed, with secrets; deleted when empty). */
const withCookie = <A>(save: Save<A>, from: HttpServerResponse.HttpServerResponse, key: string, maxAge: number | undefined) =>
  setCookie(save.settings, from, SessionCookie.value(key, save.settings.secrets), maxAge)

/** A persistent cookie's lifetime (ms) when the session is remembered, else a browser-session cookie. */
export const maxAgeOf = <A>(draft: RequestState.Draft<A>, expiresAt: number, now: number) =>
  draft.remember ? expiresAt - now : undefined

/** A refused write: the handler's response is replaced, so nothing unstored is acknowledged. */
const refused = <A>(save: Save<A>, refusal: Refusal) => {
  const reason = refusals[refusal]
  const conflict = withVary(conflictResponse(new SessionConflict({ reason }), save.json))
  return Effect.as(
    Observability.count(Observability.writesRefused, 1, ["reason", reason]),
    reason === "Ended" ? withCookie(save, conflict, "", 0) : conflict
  )
}

const refusing = <A>(save: Save<A>) => ({
  NotFound: () => refused(save, "NotFound"),
  Expired: () => refused(save, "Expired"),
  Rotated: () => refused(save, "Rotated")
})

/** Carries out the plan. */
const execute = <A>(save: Save<A>, plan: Exclude<RequestState.Plan, { readonly _tag: "Skip" }>) => {
  const { settings, state, store } = save
  const { draft } = state
  const response = withVary(save.response)
  const replay = (stored: string) => RequestState.replay(draft, settings.codec)(stored).value
  const from = state.origin._tag === "Live" ? state.origin.stored : undefined
  switch (plan._tag) {
    case "Create":
      return Effect.gen(function*() {
        if (plan.clear !== undefined) {
          yield* store.clear(plan.clear)
          yield* Observability.count(Observability.sessionsDestroyed)
        }
        const value = Envelope.encode(RequestState.toEnvelope(draft, settings.codec))
        const key = yield* store.generate({ value, expiresAt: DateTime.makeUnsafe(plan.expiresAt), ...draft.owner })
        yield* Observability.count(Observability.sessionsCreated)
        return withCookie(save, response, key, maxAgeOf(draft, plan.expiresAt, save.now))
      })
    case "Clear":
      return store.clear(plan.key).pipe(
        Effect.andThen(Observability.count(Observability.sessionsDestroyed)),
        Effect.as(withCookie(save, response, "", 0))
      )
    case "Touch":
      return store.touch(plan.key, { expiresAt: DateTime.makeUnsafe(plan.expiresAt) }).pipe(
        Effect.as(draft.remember ? withCookie(save, response, plan.key, maxAgeOf(draft, plan.expiresAt, save.now)) : response),
        // A renewal is not a write the handler asked for: a session gone or rotated meanwhile is simply not renewed.
        Effect.catchTags({
          NotFound: () => Effect.succeed(response),
          Expired: () => Effect.succeed(response),
          Rotated: () => Effect.succeed(response)
        })
      )
    case "SetSubject":
      return store.setSubject(plan.key, draft.owner!.subject ?? null, draft.owner!).pipe(
        Effect.as(response),
        Effect.catchTags(refusing(save))
      )
    case "Write": {
      // A new owner is set in the same statement as the data: both land or neither does.
      const owner = draft.owner === undefined ? {} : { ...draft.owner, subject: draft.owner.subject ?? null }
      const expiresAt = plan.expiresAt === undefined ? undefined : DateTime.makeUnsafe(plan.expiresAt)
      // The cookie changes when the expiry of a remembered session moves, or remember-me was switched either way.
      const cookie = (plan.expiresAt !== undefined && draft.remember) || draft.rememberChanged
      return store.modify(plan.key, replay, { expiresAt, from, ...owner }).pipe(
        Effect.as(cookie ? withCookie(save, response, plan.key, maxAgeOf(draft, plan.expiresAt ?? save.now, save.now)) : response),
        Effect.catchTags(plan.required ? refusing(save) : {
          NotFound: () => Effect.succeed(withCookie(save, response, "", 0)),
          Expired: () => Effect.succeed(withCookie(save, response, "", 0)),
          Rotated: () => Effect.succeed(response)
        })
      )
    }
    case "Rotate":
      return Effect.gen(function*() {
        const rotation = yield* store.rotate(plan.key, replay, {
          expiresAt: DateTime.makeUnsafe(plan.expiresAt),
          staleTimeout: plan.staleTimeout,
          from,
          ...draft.owner
        })
        // A privilege drop leaves nothing readable behind: the old key ends with the rotation.
        if (plan.ends === true) yield* store.clear(plan.key)
        yield* Observability.count(Observability.sessionsRotated)
        return withCookie(save, response, rotation.key, maxAgeOf(draft, plan.expiresAt, save.now))
      }).pipe(Effect.catchTags(refusing(save)))
  }
}

/**
 * The pre-response handler: stores what the plan says and sets the cookie. It cannot fail or hang: a store
 * failure becomes a 503, a refused write a 409, anything unexpected a logged 500.
 */
export const save = <A>(
  settings: Resolved<A>,
  store: SessionStore.Service,
  state: RequestState.RequestState<A>,
  handled: HttpServerResponse.HttpServerResponse
): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  frame(settings, state, handled, (plan, response, now, json) => {
    /** A value the app made that the store refused: a bug of the app's, logged, answered 500. */
    const failedInternally = (error: unknown) =>
      Effect.as(settings.logFailure("session save", error), withVary(internalError))
    return execute({ settings, store, state, response, now, json }, plan).pipe(
      Effect.catchTags({
        SessionStoreError: (error) =>
          Effect.as(settings.logFailure("session save", error), withVary(unavailableResponse(json))),
        InvalidValue: failedInternally,
        InvalidExpiry: failedInternally,
        InvalidSubject: failedInternally
      })
    )
  })

/**
 * What every save does around carrying out its plan (`run`, the mode's): `Vary: Cookie`; `Cache-Control: private`
 * on a response built from a session; the plan made (pure); nothing saved for a 5xx (logged); a defect answered
 * with a logged 500; a span. `run` gets the plan, the response so far, the time and whether it was JSON.
 */
export const frame = <A, K, S>(
  settings: Resolved<A>,
  state: RequestState.RequestState<A, K, S>,
  handled: HttpServerResponse.HttpServerResponse,
  run: (
    plan: Exclude<RequestState.Plan<K>, { readonly _tag: "Skip" }>,
    response: HttpServerResponse.HttpServerResponse,
    now: number,
    json: boolean
  ) => Effect.Effect<HttpServerResponse.HttpServerResponse>
): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  // However the 503 was rendered (an HttpApi encodes the error itself), it says when to come back.
  const response = state.origin._tag === "Unavailable" && handled.status === 503
    ? HttpServerResponse.setHeaders(withVary(handled), retryAfter)
    : withVary(handled)
  // A response built from a session is nobody else's: shared caches must not keep it (unless the app said so).
  // Applied last, so a response that sets the cookie keeps the cookie's own `private, no-store`.
  const loaded = state.origin._tag === "Live" || state.origin._tag === "Stale"
  const privately = (final: HttpServerResponse.HttpServerResponse) =>
    loaded && final.headers["cache-control"] === undefined
      ? HttpServerResponse.setHeader(final, "cache-control", "private")
      : final
  return Effect.suspend(() => {
    // The request's one clock reading, taken when it loaded: every expiry it saves is computed from it.
    const now = state.startedAt
    const plan = RequestState.plan(state, now, settings.policy, settings.staleTimeout)
    if (plan._tag === "Skip") return Effect.succeed(privately(response))
    // The request failed: none of its session changes are applied (a rotation neither), and the cookie stays.
    if (handled.status >= 500) {
      return Effect.as(
        settings.logFailure("session save skipped", new FailedRequest({ status: handled.status }), "Warning"),
        privately(response)
      )
    }
    const saved = run(plan, response, now, isJson(handled)).pipe(
      Effect.catchCause((cause) => Effect.as(settings.logFailure("session save (defect)", cause), withVary(internalError))),
      Effect.map(privately)
    )
    return Observability.middlewareSpan("save", saved, (final) => ({
      "session.plan": plan._tag,
      "http.response.status_code": final.status
    }))
  })
}
