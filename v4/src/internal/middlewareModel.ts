/**
 * The middleware's models: what handlers see of their session, and the options of a session's layer. Types only;
 * `SessionMiddleware.ts` publishes them.
 */
import type { Duration, Effect, Option, Redacted, Schema } from "effect"
import type { InvalidSubject } from "../SessionError.js"
import type { SessionConflict, SessionTooLarge, SessionUnavailable } from "./httpErrors.js"
import type { Owner, SessionInfo } from "./storeModel.js"

/**
 * The session of the current request, as handlers see it. Changes are applied locally at once (so `get` sees
 * them) and saved when the response is sent. Use its members (destructuring works); don't copy it with a spread:
 * the Effect-valued members are getters and would be left behind.
 */
export interface CurrentSession<A> {
  /** The session data (the `initial` value for a new session). */
  readonly get: Effect.Effect<A, SessionUnavailable>
  /**
   * Replaces the data. Only the top-level fields that differ from the current data are saved, so a concurrent
   * request that changed other fields keeps its changes.
   */
  readonly set: (data: A) => Effect.Effect<void, SessionUnavailable | SessionConflict | SessionTooLarge>
  /**
   * Applies `f`; on save `f` is re-applied to the value then stored, so concurrent updates compose (counters).
   * Data over `maxBytes` fails here, with `SessionTooLarge`, and changes nothing.
   */
  readonly update: (f: (data: A) => A) => Effect.Effect<void, SessionUnavailable | SessionConflict | SessionTooLarge>
  /** Queues a one-shot message, readable through `flashes` on the next request only. */
  readonly flash: (key: string, message: string) => Effect.Effect<void, SessionUnavailable | SessionConflict>
  /** The flash messages queued by the previous request (consumed by this one). */
  readonly flashes: Effect.Effect<Readonly<Record<string, string>>, SessionUnavailable>
  /**
   * Moves the session to a new key, keeping its data (call it on login, against session fixation). The old key
   * stays readable for `staleTimeout` with the data it had before this request, read-only, then it is gone. The
   * CSRF token changes with the key, and the absolute timeout starts again (unless `absoluteTimeoutFrom:
   * "creation"`): authentication starts the session's life.
   */
  readonly regenerate: Effect.Effect<void, SessionUnavailable | SessionConflict>
  /**
   * Moves the session to a new key like `regenerate`, but the old key ends at once: nothing stays readable
   * through it. For logout and any other privilege drop (with `setSubject(null)` and the data changes it needs).
   */
  readonly dropPrivileges: Effect.Effect<void, SessionUnavailable | SessionConflict>
  /**
   * Removes the session from the store and expires the cookie. Later changes in this request start a new one.
   * Through a rotated key it is refused, like any write.
   */
  readonly destroy: Effect.Effect<void, SessionUnavailable | SessionConflict>
  /** Persistent cookie (`Max-Age`) and the `remember` timeouts, or a browser-session cookie. */
  readonly rememberMe: (remember: boolean) => Effect.Effect<void, SessionUnavailable | SessionConflict>
  /**
   * The session's CSRF token, for a form field or a header (see the `csrfTokens` option): different on every
   * call (masked against BREACH-style compression attacks) but always valid for this session until its key
   * changes. A session is created for it if there is none.
   */
  readonly csrfToken: Effect.Effect<string, SessionUnavailable | SessionConflict>
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
    options?: Omit<Owner, "subject">
  ) => Effect.Effect<void, SessionUnavailable | SessionConflict | InvalidSubject>
  /** The live sessions of this session's subject, most recent first, the current one marked; none without one. */
  readonly sessions: Effect.Effect<ReadonlyArray<SessionInfo & { readonly current: boolean }>, SessionUnavailable>
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
 * Options of the middleware, given to its layer. Every duration is a `Duration.Input`.
 */
export interface Options {
  readonly cookie?: {
    /**
     * Default `"__Host-session"` when the cookie is Secure, on `/` and host-only (a sibling subdomain then cannot
     * set one in its place), else `"session"`. A `__Host-` or `__Secure-` name whose rules are broken is refused.
     */
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
    /**
     * Secrets (each at least 32 bytes) to sign the cookie with (HMAC-SHA256): the first signs, every one verifies,
     * so a secret is rotated by putting the new one first. A cookie without a valid signature never reaches the
     * store. Default: unsigned (keys are 256-bit random either way).
     */
    readonly secrets?: ReadonlyArray<Redacted.Redacted> | undefined
  } | undefined
  /** Session ends after this long without a request. Default 30 minutes. */
  readonly idleTimeout?: Duration.Input | undefined
  /** Session ends this long after it was created, however active. Default 1 day. */
  readonly absoluteTimeout?: Duration.Input | undefined
  /** Timeouts of remembered sessions (`rememberMe(true)`). Defaults 7 days idle, 30 days absolute. */
  readonly remember?: {
    readonly idleTimeout?: Duration.Input | undefined
    readonly absoluteTimeout?: Duration.Input | undefined
  } | undefined
  /**
   * A read-only request renews the idle timeout only once this fraction of it has passed since the last renewal,
   * so read traffic does not write on every request. Default 0.1; 0 renews on every request.
   */
  readonly renewalThreshold?: number | undefined
  /** How long a key replaced by `regenerate` stays readable (read-only). Default 10 seconds. */
  readonly staleTimeout?: Duration.Input | undefined
  /**
   * Where the absolute timeout counts from: the last `regenerate` (a login; default) or the session's creation.
   */
  readonly absoluteTimeoutFrom?: "regenerate" | "creation" | undefined
  /**
   * Session-bound CSRF tokens: every request that may change state (any method but `GET`, `HEAD`, `OPTIONS`) and
   * comes with a session must carry the session's token (`csrfToken`) in the `header` (default `x-csrf-token`) or,
   * in a urlencoded form, the `field` (default `_csrf`), or it is refused with `CsrfTokenInvalid` (403) before its
   * handler runs. A request without a session has no session to ride; a forged login is refused by the
   * cross-origin guard (`CsrfProtection`), which belongs in front of every app. Default off.
   */
  readonly csrfTokens?: boolean | {
    readonly header?: string | undefined
    readonly field?: string | undefined
  } | undefined
  /**
   * The largest session data, as encoded JSON in UTF-8 bytes: `set` and `update` beyond it fail in the handler
   * with `SessionTooLarge` (413) and change nothing. Default 512 KiB; keep it below the store's `maxValueBytes`
   * (1 MiB by default), which also holds the flash messages.
   */
  readonly maxBytes?: number | undefined
  /**
   * Turns stored data that no longer decodes with the schema (a deploy changed it) into data that does: called
   * with the stored, encoded data; its result is decoded with the schema. Fields added with a default
   * (`Schema.optionalWith(…, { default })`) need no migration: they decode as the default.
   */
  readonly migrate?: ((stored: unknown) => unknown) | undefined
  /**
   * What a stored session that does not decode (even after `migrate`) becomes: `"reset"` (default), a new empty
   * session (logged, at most one line per 10 s); or `"fail"`, the request fails with `SessionUndecodable` (500)
   * before its handler, and the stored session is kept for a fixed deploy to read.
   */
  readonly onUndecodable?: "reset" | "fail" | undefined
}

/**
 * The session of the current request in the sealed-cookie mode (`SessionMiddleware.SealedTag`), as handlers see
 * it: the session lives in its cookie, sealed (AES-256-GCM), and nowhere else. Changes are applied locally at once
 * and sealed into a new cookie when the response is sent. There is no store, so nothing here can be unavailable
 * or conflict; and no member lists, revokes or logs out other sessions: nothing on the server knows them.
 */
export interface SealedSession<A> {
  /** The session data (the `initial` value for a new session). */
  readonly get: Effect.Effect<A>
  /**
   * Replaces the data. Fails with `SessionTooLarge` (`limit: "cookie"`), here and changing nothing, when the sealed
   * cookie would not fit in the 4096 bytes of a `Set-Cookie` line.
   */
  readonly set: (data: A) => Effect.Effect<void, SessionTooLarge>
  /** Applies `f` to the data; `SessionTooLarge` as `set`. */
  readonly update: (f: (data: A) => A) => Effect.Effect<void, SessionTooLarge>
  /** Queues a one-shot message for the next request; `SessionTooLarge` when the cookie would not hold it. */
  readonly flash: (key: string, message: string) => Effect.Effect<void, SessionTooLarge>
  /** The flash messages queued by the previous request (consumed by this one). */
  readonly flashes: Effect.Effect<Readonly<Record<string, string>>>
  /**
   * Seals the session afresh (on login): a new CSRF secret, and the absolute timeout starts again (unless
   * `absoluteTimeoutFrom: "creation"`). The cookie the request came with still opens, until its own sealed expiry,
   * with the data it held: nothing can end it.
   */
  readonly regenerate: Effect.Effect<void>
  /**
   * As `regenerate`, for logout and other privilege drops (with the data changes they need). The cookie the
   * request came with cannot be ended: a copy of it opens, logged in, until its sealed expiry.
   */
  readonly dropPrivileges: Effect.Effect<void>
  /** Expires the cookie in this browser. Later changes in this request start a new session. */
  readonly destroy: Effect.Effect<void>
  /** Persistent cookie (`Max-Age`) and the `remember` timeouts, or a browser-session cookie. */
  readonly rememberMe: (remember: boolean) => Effect.Effect<void>
  /** The session's CSRF token (see `CurrentSession.csrfToken`); a session is created for it if there is none. */
  readonly csrfToken: Effect.Effect<string>
  /** Whether this request started without a live session. */
  readonly isNew: Effect.Effect<boolean>
}

/**
 * Options of the sealed-cookie mode's layer: those of the server-side mode (below) but `staleTimeout` (no key
 * stays behind) and `maxBytes` (the cookie's 4096 bytes are the limit), with the sealing secrets required.
 */
export interface SealedOptions extends Omit<Options, "cookie" | "staleTimeout" | "maxBytes"> {
  /**
   * Secrets (each at least 32 bytes, at least one) to derive the AES-256-GCM keys from (HKDF-SHA256): the first
   * seals, every one opens, so a secret is rotated by putting the new one first. Dropping a secret ends every
   * session sealed under it: the only way to log everyone out.
   */
  readonly secrets: ReadonlyArray<Redacted.Redacted>
  /** The cookie's name and attributes, as in the server-side mode (there are no signing secrets to give). */
  readonly cookie?: Omit<NonNullable<Options["cookie"]>, "secrets"> | undefined
}

/**
 * What a session holds: the schema of its data (whose encoded form must be JSON) and the data of a new session.
 */
export interface Definition<A, I> {
  readonly schema: Schema.Codec<A, I>
  readonly initial: A
}

