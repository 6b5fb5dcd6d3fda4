import { describe, expect, it } from "@effect/vitest"
import { Effect, Logger, References } from "effect"
import { TestClock } from "effect/testing"
import * as FailureLog from "../../src/internal/failureLog.js"
import { SessionStoreError } from "../../src/SessionError.js"

describe("FailureLog", () => {
  it.effect("one line per operation per window, counting the rest; class and code, never the message", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const debug: Array<string> = []
      const log = FailureLog.make("test", 10_000)
      const secret = Object.assign(new Error("duplicate key (id)=(secret-value)"), { code: "23505" })
      const error = new SessionStoreError({ operation: "get", cause: secret })
      yield* Effect.gen(function*() {
        for (let i = 0; i < 100; i++) yield* log("session load", error)
        yield* TestClock.adjust("10 seconds")
        yield* log("session load", error)
        yield* log("session save", error)
      }).pipe(
        Effect.provide(Logger.layer([
          Logger.make(({ fiber, logLevel, message }) => {
            const annotations = fiber.getRef(References.CurrentLogAnnotations)
            if (logLevel !== "Debug") lines.push(`${logLevel.toUpperCase()} ${message} ${Object.keys(annotations).length}`)
            else debug.push(`${message}`)
          })
        ])),
        Effect.provideService(References.MinimumLogLevel, "Debug")
      )
      expect(lines).toEqual([
        "ERROR session load failed: SessionStoreError(get) ← Error 23505 1",
        "ERROR session load failed: SessionStoreError(get) ← Error 23505 (99 similar failures not logged in the last 10 s) 1",
        "ERROR session save failed: SessionStoreError(get) ← Error 23505 1"
      ])
      expect(lines.join("\n")).not.toContain("secret")
      expect(debug).toHaveLength(102) // every failure, at debug level, with where it was raised
      expect(debug[0]).toMatch(/^session load failed: SessionStoreError\(get\) ← Error 23505\n\s+at /)
      expect(debug.join("\n")).not.toContain("secret")
      expect(error.message).toBe("session store get failed: Error 23505") // the error itself quotes no driver message
    }))
})
