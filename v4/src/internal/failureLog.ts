import { Effect } from "effect"

/**
 * Names a failure by its class and code, never by its message: driver messages can quote SQL parameters, and a
 * session's value or key must never reach a log. Walks the `cause` chain to the innermost error, where the useful
 * class is (`SessionStoreError` → `SqlError` → `Error ECONNREFUSED`).
 */
export const describe = (error: unknown): string => {
  const names: Array<string> = []
  let current: unknown = error
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth++) {
    if (typeof current !== "object") break
    const record = current as { _tag?: unknown; name?: unknown; code?: unknown; operation?: unknown; cause?: unknown }
    const name = typeof record._tag === "string" ? record._tag : typeof record.name === "string" ? record.name : "Error"
    const code = typeof record.code === "string" || typeof record.code === "number"
      ? ` ${record.code}`
      : typeof (record as { status?: unknown }).status === "number"
      ? ` ${(record as { status: number }).status}`
      : ""
    const operation = typeof record.operation === "string" ? `(${record.operation})` : ""
    names.push(`${name}${operation}${code}`)
    current = record.cause
  }
  return names.length === 0 ? String(typeof error) : names.join(" ← ")
}

/** Where each error in the chain was raised: its class and code, and stack frames without the messages. */
const debugLine = (operation: string, error: unknown): string => {
  const frames: Array<string> = []
  let current: unknown = error
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    const stack = (current as { stack?: unknown }).stack
    if (typeof stack === "string") frames.push(...stack.split("\n").filter((line) => /^\s+at /.test(line)).slice(0, 8))
    current = (current as { cause?: unknown }).cause
  }
  return `${operation} failed: ${describe(error)}\n${frames.join("\n")}`
}

/**
 * A logger for failures that can repeat thousands of times a second during an outage: one line per failure with
 * the operation and the cause's class, at most one line per operation per `windowMillis` (the next line says how
 * many were suppressed), and the full cause only at debug level.
 */
export const make = (service: string, windowMillis = 10_000) => {
  const windows = new Map<string, { until: number; suppressed: number }>()
  return (operation: string, error: unknown, level: "Warning" | "Error" = "Error"): Effect.Effect<void> =>
    Effect.clockWith((clock) => {
      const now = clock.currentTimeMillisUnsafe()
      const window = windows.get(operation)
      if (window !== undefined && now < window.until) {
        window.suppressed++
        return Effect.logDebug(debugLine(operation, error)).pipe(Effect.annotateLogs("service", service))
      }
      const suppressed = window?.suppressed ?? 0
      windows.set(operation, { until: now + windowMillis, suppressed: 0 })
      const line = `${operation} failed: ${describe(error)}` +
        (suppressed > 0 ? ` (${suppressed} similar failures not logged in the last ${windowMillis / 1000} s)` : "")
      return (level === "Error" ? Effect.logError(line) : Effect.logWarning(line)).pipe(
        Effect.andThen(Effect.logDebug(debugLine(operation, error))),
        Effect.annotateLogs("service", service)
      )
    })
}
