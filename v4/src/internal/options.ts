import { Config, Duration, Effect } from "effect"
import { InvalidConfig } from "../SessionError.js"

/**
 * The largest expiry, period or timeout accepted anywhere (±1000 years): beyond it a timestamp leaves the range that
 * every backend (PostgreSQL `timestamptz`, JavaScript `Date`) holds, so it is refused up front as a typed error
 * instead of failing later inside a write.
 */
export const maxPeriodMillis = 1000 * 365.25 * 24 * 60 * 60 * 1000

/**
 * A duration input in milliseconds if it is finite and within ±{@link maxPeriodMillis}, else `undefined` (NaN,
 * ±Infinity, `Duration.infinity`, an unparsable string, 1e16). A plain number is taken as milliseconds and may be
 * negative.
 */
export const finiteMillis = (input: Duration.Input): number | undefined => {
  let ms: number
  if (typeof input === "number") {
    ms = input
  } else {
    try {
      const duration = Duration.fromInputUnsafe(input)
      if (!Duration.isFinite(duration)) return undefined
      ms = Duration.toMillis(duration)
    } catch {
      return undefined
    }
  }
  return Number.isFinite(ms) && Math.abs(ms) <= maxPeriodMillis ? ms : undefined
}

/** A duration option of at least `min` milliseconds, or `InvalidConfig`. */
export const durationOption = (
  option: string,
  input: Duration.Input,
  min: number
): Effect.Effect<number, InvalidConfig> => {
  const ms = finiteMillis(input)
  return ms !== undefined && ms >= min
    ? Effect.succeed(ms)
    : Effect.fail(
      new InvalidConfig({
        option,
        reason: `must be a finite duration of at least ${min} ms (and at most 1000 years), got ${String(input)}`
      })
    )
}

/** A positive integer option, or `InvalidConfig`. */
export const positiveInteger = (option: string, value: number): Effect.Effect<number, InvalidConfig> =>
  Number.isSafeInteger(value) && value > 0
    ? Effect.succeed(value)
    : Effect.fail(new InvalidConfig({ option, reason: `must be a positive integer, got ${value}` }))

/** One of the allowed string values, or `InvalidConfig`. */
export const oneOf = <const A extends string>(
  option: string,
  value: string,
  allowed: ReadonlyArray<A>
): Effect.Effect<A, InvalidConfig> =>
  (allowed as ReadonlyArray<string>).includes(value)
    ? Effect.succeed(value as A)
    : Effect.fail(
      new InvalidConfig({ option, reason: `must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}` })
    )

/**
 * Options for a `…Config` layer: each field a plain value, a `Config` of it, or (for nested objects) their fields so.
 */
export type Configured<A> = { readonly [K in keyof A]: A[K] | Config.Wrap<A[K]> }

/** Whether a value is a plain object literal (not a `Redacted`, a `Duration`, an array or a function). */
const isPlainObject = (value: unknown): value is Readonly<Record<string, unknown>> => {
  if (typeof value !== "object" || value === null) return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/**
 * One `Config` of options given as {@link Configured}: a `Config` is read, a plain object is looked into, any other
 * value is taken as it is (`Config.unwrap` alone would recurse into a plain string until the stack overflows).
 */
export const unwrapConfig = <A>(input: Configured<A> | Config.Config<A>): Config.Config<A> => {
  const unwrap = (value: unknown): Config.Config<unknown> =>
    Config.isConfig(value)
      ? value
      : isPlainObject(value)
      ? Config.all(Object.fromEntries(Object.entries(value).map(([key, field]) => [key, unwrap(field)])))
      : Config.succeed(value)
  return unwrap(input) as Config.Config<A>
}
