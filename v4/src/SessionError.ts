/**
 * The typed errors of session stores. They carry no session keys or values, so they are safe to log.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { describe } from "./internal/failureLog.js"
import { explain } from "./internal/startupFailure.js"

/**
 * No session exists for the key (never created, cleared, removed by cleanup, or not a well-formed key).
 * OCaml's `Not_found`.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotFound extends Schema.TaggedError<NotFound>("effect-session/NotFound")("NotFound", {}) {
  override get message() {
    return "session not found"
  }
}

/**
 * The session exists but its expiry is in the past (`now > expiresAt`). A remaining period of exactly zero is
 * still valid.
 *
 * @since 0.1.0
 * @category errors
 */
export class Expired extends Schema.TaggedError<Expired>("effect-session/Expired")("Expired", {}) {
  override get message() {
    return "session expired"
  }
}

/**
 * The key was rotated away (by `rotate`, e.g. a login): for its stale period it still reads the data it had before
 * the rotation, but it is read-only. Every write through it (`set`, `touch`, `modify`, `rotate`) fails with this
 * error and changes nothing, so a key planted before a login can never change, extend or re-rotate the session.
 *
 * @since 0.2.0
 * @category errors
 */
export class Rotated extends Schema.TaggedError<Rotated>("effect-session/Rotated")("Rotated", {}) {
  override get message() {
    return "session key was rotated; it is read-only until its stale period ends"
  }
}

/**
 * A value was rejected before anything was written: larger than the store's `maxValueBytes`, or not a well-formed
 * Unicode string (a NUL character or a lone surrogate, which PostgreSQL's `text` cannot keep faithfully).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidValue extends Schema.TaggedError<InvalidValue>("effect-session/InvalidValue")("InvalidValue", {
  reason: Schema.Literals(["TooLarge", "NotWellFormed"]),
  bytes: Schema.Number,
  maxBytes: Schema.Number
}) {
  override get message() {
    return this.reason === "TooLarge"
      ? `session value of ${this.bytes} bytes exceeds the maximum of ${this.maxBytes} bytes`
      : "session value is not a well-formed Unicode string (NUL character or lone surrogate)"
  }
}

/**
 * A subject, audience or metadata was rejected before anything was written: empty, too large, or not a
 * well-formed string (NUL characters and lone surrogates cannot be stored faithfully).
 *
 * @since 0.2.0
 * @category errors
 */
export class InvalidSubject extends Schema.TaggedError<InvalidSubject>("effect-session/InvalidSubject")("InvalidSubject", {
  field: Schema.Literals(["subject", "audience", "metadata"]),
  reason: Schema.String
}) {
  override get message() {
    return `invalid session ${this.field}: ${this.reason}`
  }
}

/**
 * An expiry or period that is not a finite duration (NaN, Infinity, an unparsable string) or lies beyond
 * ±1000 years (which no database timestamp could hold reliably). Negative numbers of milliseconds are allowed: they
 * yield a session that is already expired.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidExpiry extends Schema.TaggedError<InvalidExpiry>("effect-session/InvalidExpiry")("InvalidExpiry", {
  input: Schema.String
}) {
  override get message() {
    return `expiry must be a finite duration within ±1000 years, got ${this.input}`
  }
}

/**
 * A layer's options were rejected when it was built (a table name that is not an identifier, a negative
 * interval, an embedded pool larger than its server accepts, a cookie attribute that could not be sent, ...).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>("effect-session/InvalidConfig")("InvalidConfig", {
  option: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid option ${this.option}: ${this.reason}`
  }
}

/**
 * The backend failed (connection lost, timeout, SQL error). Every backend failure becomes this one error,
 * so backends are interchangeable; `operation` names the store operation, `cause` holds the original error.
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionStoreError extends Schema.TaggedError<SessionStoreError>("effect-session/SessionStoreError")("SessionStoreError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  /**
   * The operation and the cause's class and code, never the driver's message (it can quote SQL parameters); at
   * start-up (`connect`, `init`) what is wrong and what to do, when the failure is a known one.
   */
  override get message() {
    const startup = this.operation === "connect" || this.operation === "init" ? explain(this.cause) : undefined
    return startup === undefined
      ? `session store ${this.operation} failed: ${describe(this.cause)}`
      : `session store could not start: ${startup} (${describe(this.cause)})`
  }
}
