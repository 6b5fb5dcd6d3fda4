/**
 * The parallel of OCaml's `Session_cohttp_async.Make`: an immutable session record and the functions that load it
 * from request headers, change it in the store, and turn it into response headers.
 *
 * For a complete middleware (typed data, flash, rotation, timeouts, concurrency-safe saves) use
 * `SessionMiddleware`; this module is the small, explicit layer underneath it.
 *
 * @since 0.1.0
 */
import { Cookies, Headers } from "effect/http"
import { Duration, Effect, Option } from "effect"
import { finiteMillis } from "./internal/options.js"
import * as SessionCookie from "./internal/sessionCookie.js"
import { type Expired, type InvalidExpiry, type InvalidValue, type NotFound, Rotated, type SessionStoreError } from "./SessionError.js"
import type * as SessionKey from "./SessionKey.js"
import { SessionStore } from "./SessionStore.js"

/**
 * A session as seen by one request: OCaml's `{ key; value; expiry_period; modified }`, immutable here; the
 * operations return the updated record.
 *
 * @since 0.1.0
 * @category models
 */
export interface HttpSession {
  readonly key: SessionKey.SessionKey
  readonly value: string
  /** The period from now after which the session expires. */
  readonly expiryPeriod: Duration.Duration
  /** Whether value or expiry changed, so that `toCookieHeaders` must send the cookie. */
  readonly modified: boolean
  /**
   * The key was rotated away: the record holds what the session held before the rotation, read-only. `set`,
   * `rotate` and `clear` fail with `Rotated` without touching the store (as the middleware answers 409).
   */
  readonly rotated: boolean
}

/** A write through a rotated (read-only) record: refused, as the store would. */
const readOnly = (session: HttpSession): Effect.Effect<void, Rotated> =>
  session.rotated ? Effect.fail(new Rotated()) : Effect.void

/**
 * Cookie attributes for `toCookieHeaders`. Defaults: `Path=/`, `Secure`, `HttpOnly`, `SameSite=Lax`, and a
 * persistent cookie whose `Max-Age` is the session's expiry period (`discard: true` makes a browser-session cookie).
 *
 * @since 0.1.0
 * @category models
 */
export interface CookieOptions {
  readonly discard?: boolean | undefined
  readonly path?: string | undefined
  readonly domain?: string | undefined
  readonly secure?: boolean | undefined
  readonly httpOnly?: boolean | undefined
  readonly sameSite?: "lax" | "strict" | "none" | undefined
}

/**
 * The period an operation just set, without reading it back: the expiry given (already validated by the store; a
 * negative one is zero, so the cookie is cleared), or the store's default.
 */
const periodOf = (store: SessionStore["Service"], expiry: Duration.Input | undefined) =>
  expiry === undefined ? store.defaultPeriod : Effect.succeed(Duration.millis(Math.max(0, finiteMillis(expiry) ?? 0)))

/**
 * Fetches the live session for `key` (`of_key`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const ofKey = (
  key: string
): Effect.Effect<HttpSession, NotFound | Expired | SessionStoreError, SessionStore> =>
  Effect.flatMap(SessionStore, (store) =>
    Effect.map(store.get(key), ({ expiresIn, rotated, value }) => ({
      key: key as SessionKey.SessionKey,
      value,
      expiryPeriod: expiresIn,
      modified: false,
      rotated
    })))

/**
 * Reads the key from the `Cookie` header under `cookieName` and fetches its session (`of_header`). `None` when the
 * cookie is absent (or duplicated, or not a well-formed key: such a cookie is ignored without touching the store).
 *
 * @since 0.1.0
 * @category constructors
 */
export const ofHeader = (
  cookieName: string,
  headers: Headers.Headers
): Effect.Effect<Option.Option<HttpSession>, NotFound | Expired | SessionStoreError, SessionStore> =>
  Option.match(SessionCookie.read(headers, cookieName), {
    onNone: () => Effect.succeedNone,
    onSome: (key) => Effect.asSome(ofKey(key))
  })

/**
 * Allocates a new session holding `value` (`generate`); it is `modified`, so its cookie will be sent.
 *
 * @since 0.1.0
 * @category constructors
 */
export const generate = (
  options: { readonly expiry?: Duration.Input | undefined },
  value: string
): Effect.Effect<HttpSession, InvalidValue | InvalidExpiry | SessionStoreError, SessionStore> =>
  Effect.flatMap(SessionStore, (store) =>
    Effect.gen(function*() {
      const key = yield* store.generate({ value, expiry: options.expiry })
      return { key, value, expiryPeriod: yield* periodOf(store, options.expiry), modified: true, rotated: false }
    }))

/**
 * The session from the header if there is a live one, else a new session holding `defaultValue`
 * (`of_header_or_create`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const ofHeaderOrCreate = (
  options: { readonly expiry?: Duration.Input | undefined },
  cookieName: string,
  defaultValue: string,
  headers: Headers.Headers
): Effect.Effect<HttpSession, InvalidValue | InvalidExpiry | SessionStoreError, SessionStore> =>
  ofHeader(cookieName, headers).pipe(
    Effect.catchTags({
      NotFound: () => Effect.succeed(Option.none<HttpSession>()),
      Expired: () => Effect.succeed(Option.none<HttpSession>())
    }),
    Effect.flatMap(Option.match({
      onNone: () => generate(options, defaultValue),
      onSome: Effect.succeed
    }))
  )

/**
 * Ends the session (`clear`): every key it had. The returned record has an empty value, a zero expiry period and
 * `modified` set, so `toCookieHeaders` tells the client to delete the cookie. A rotated record is refused.
 *
 * @since 0.1.0
 * @category operations
 */
export const clear = (session: HttpSession): Effect.Effect<HttpSession, Rotated | SessionStoreError, SessionStore> =>
  Effect.flatMap(SessionStore, (store) =>
    readOnly(session).pipe(
      Effect.andThen(store.clear(session.key)),
      Effect.as({ ...session, value: "", expiryPeriod: Duration.zero, modified: true })
    ))

/**
 * What a write through a session record can fail with.
 *
 * @since 0.3.0
 * @category errors
 */
export type WriteError = NotFound | Expired | Rotated | InvalidValue | InvalidExpiry | SessionStoreError

/** A write through `session` (refused when it is rotated): the new record, `modified`, with the period just set. */
const writing = (
  session: HttpSession,
  expiry: Duration.Input | undefined,
  write: (store: SessionStore["Service"]) => Effect.Effect<{ readonly key: SessionKey.SessionKey; readonly value: string }, WriteError>
): Effect.Effect<HttpSession, WriteError, SessionStore> =>
  Effect.flatMap(SessionStore, (store) =>
    Effect.gen(function*() {
      yield* readOnly(session)
      const { key, value } = yield* write(store)
      return { key, value, expiryPeriod: yield* periodOf(store, expiry), modified: true, rotated: false }
    }))

/**
 * Sets the value and/or the expiry in the store (`set`). Without `value` only the expiry is renewed; without
 * `expiry` the store's default period applies. A session that ended meanwhile (logged out everywhere, say) is
 * `NotFound` and stays ended; a rotated record is refused with `Rotated`.
 *
 * @since 0.1.0
 * @category operations
 */
export const set = (
  options: { readonly expiry?: Duration.Input | undefined; readonly value?: string | undefined },
  session: HttpSession
): Effect.Effect<HttpSession, WriteError, SessionStore> =>
  writing(session, options.expiry, (store) => {
    const { expiry, value } = options
    const written = value === undefined ? store.touch(session.key, { expiry }) : store.set(session.key, value, { expiry })
    return Effect.as(written, { key: session.key, value: value ?? session.value })
  })

/**
 * Moves the session to a new key (on login, against session fixation), with `value` when given, else the value it
 * holds. The old key keeps its value, read-only, for `staleTimeout` (default 10 seconds), then it is gone; writes
 * through it fail with `Rotated`. Atomic: if it fails, nothing changed. The new record is `modified`, so
 * `toCookieHeaders` sends the new key.
 *
 * @since 0.2.0
 * @category operations
 */
export const rotate = (
  options: {
    readonly expiry?: Duration.Input | undefined
    readonly value?: string | undefined
    readonly staleTimeout?: Duration.Input | undefined
  },
  session: HttpSession
): Effect.Effect<HttpSession, WriteError, SessionStore> =>
  writing(session, options.expiry, (store) =>
    store.rotate(session.key, (current) => options.value ?? current, {
      expiry: options.expiry,
      staleTimeout: options.staleTimeout
    }))

/**
 * Response headers for the session (`to_cookie_hdrs`): `Set-Cookie` only when the session was modified (with
 * `Max-Age=0` once cleared, no `Max-Age` when `discard`), and `Vary: Cookie` always.
 *
 * @since 0.1.0
 * @category headers
 */
export const toCookieHeaders = (
  cookieName: string,
  session: HttpSession,
  options: CookieOptions = {}
): Headers.Headers => {
  const vary = Headers.fromInput({ vary: "Cookie" })
  if (!session.modified) return vary
  const cleared = Duration.toMillis(session.expiryPeriod) <= 0
  const maxAge = cleared ? 0 : options.discard ? undefined : Duration.toMillis(session.expiryPeriod)
  const cookie = SessionCookie.make(cookieName, cleared ? "" : session.key, SessionCookie.attributes(options), maxAge)
  return Headers.set(vary, "set-cookie", Cookies.serializeCookie(cookie))
}

/**
 * Headers that tell the client to delete the session cookie (`clear_hdrs`).
 *
 * @since 0.1.0
 * @category headers
 */
export const clearHeaders = (
  options: { readonly path?: string | undefined; readonly domain?: string | undefined },
  cookieName: string
): Headers.Headers =>
  Headers.fromInput({
    vary: "Cookie",
    "set-cookie": Cookies.serializeCookie(SessionCookie.make(cookieName, "", SessionCookie.attributes(options), 0))
  })
