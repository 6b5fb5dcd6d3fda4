import { Duration, Effect } from "effect"
import { InvalidConfig } from "../SessionError.js"

/**
 * A duration input in milliseconds if it is finite, else `undefined` (NaN, ±Infinity, `Duration.infinity`, an
 * unparsable string). A plain number is taken as milliseconds and may be negative.
 */
export const finiteMillis = (input: Duration.DurationInput): number | undefined => {
  if (typeof input === "number") return Number.isFinite(input) ? input : undefined
  try {
    const duration = Duration.decode(input)
    return Duration.isFinite(duration) ? Duration.toMillis(duration) : undefined
  } catch {
    return undefined
  }
}

/** A duration option of at least `min` milliseconds, or `InvalidConfig`. */
export const durationOption = (
  option: string,
  input: Duration.DurationInput,
  min: number
): Effect.Effect<number, InvalidConfig> => {
  const ms = finiteMillis(input)
  return ms !== undefined && ms >= min
    ? Effect.succeed(ms)
    : Effect.fail(
      new InvalidConfig({
        option,
        reason: `must be a finite duration of at least ${min} ms, got ${String(input)}`
      })
    )
}

/** A positive integer option, or `InvalidConfig`. */
export const positiveInteger = (option: string, value: number): Effect.Effect<number, InvalidConfig> =>
  Number.isSafeInteger(value) && value > 0
    ? Effect.succeed(value)
    : Effect.fail(new InvalidConfig({ option, reason: `must be a positive integer, got ${value}` }))
