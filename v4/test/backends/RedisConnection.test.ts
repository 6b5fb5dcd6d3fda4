/**
 * The Redis connection's own guarantees, on the shared server with scripts of the test's own: a reply that does not
 * echo its command's nonce is never handed to anyone (the connection is replaced), a call past its deadline fails
 * in real time and its late reply is dropped, and a reply its decoder cannot read is a defect, not a timeout.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Schedule } from "effect"
import { createHash } from "node:crypto"
import * as RedisConnection from "../../src/internal/redisConnection.js"
import type { Script } from "../../src/internal/redisScripts.js"
import { shared } from "../support/redis.js"

const script = (name: string, source: string): Script => ({
  name,
  source,
  sha: createHash("sha1").update(source).digest("hex"),
  bare: true
})

/** Echoes its nonce and its argument: a well-formed reply. */
const echo = script("test-echo", "return { ARGV[1], ARGV[2] }")
/** Answers with somebody else's nonce, as a stream out of alignment would. */
const misaligned = script("test-misaligned", "return { 'not-' .. ARGV[1], ARGV[2] }")
/** Holds the server for ARGV[2] ms, then echoes its nonce. */
const slow = script(
  "test-slow",
  `local function now() local t = redis.call('TIME') return t[1] * 1000 + t[2] / 1000 end
local start = now()
while now() - start < tonumber(ARGV[2]) do end
return { ARGV[1] }`
)

const connect = RedisConnection.connect({
  target: { _tag: "Server", ...shared },
  username: undefined,
  password: undefined,
  db: undefined,
  tls: false,
  connectTimeout: 2_000,
  timeout: 2_000,
  replicas: 0,
  pipelining: false
})

describe("the Redis connection", () => {
  it.live("a reply that does not echo its command's nonce fails the call and replaces the connection", () =>
    Effect.gen(function*() {
      const connection = yield* connect
      expect(yield* connection.run(echo, [], ["before"], false, undefined)).toHaveLength(2)
      const failure = yield* Effect.flip(connection.run(misaligned, [], ["secret"], false, undefined))
      expect(failure.reason).toBe("desync")
      // Nothing of the reply reaches the caller, not even in the failure.
      expect(JSON.stringify(failure)).not.toContain("secret")
      // The connection was closed and reconnects by itself: calls fail at once meanwhile, then succeed again.
      const again = yield* connection.run(echo, [], ["after"], false, undefined).pipe(
        Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 100 })
      )
      expect(again).toEqual([expect.any(String), "after"])
    }).pipe(Effect.scoped))

  it.live("a call past its deadline fails in real time; its late reply is dropped and the connection goes on", () =>
    Effect.gen(function*() {
      const connection = yield* connect
      const started = performance.now()
      const failure = yield* Effect.flip(connection.run(slow, [], ["300"], false, performance.now() + 50))
      const elapsed = performance.now() - started
      expect(failure.reason).toBe("timeout")
      expect(elapsed).toBeLessThan(300)
      // The slow script's reply comes after it, with its own nonce: the next call gets its own reply, on the same
      // connection (a reply out of line would have closed it).
      expect(yield* connection.run(echo, [], ["next"], false, undefined)).toEqual([expect.any(String), "next"])
      expect(connection.client.status).toBe("ready")
    }).pipe(Effect.scoped))

  it.live("a reply its decoder cannot read is a defect of the call, at once, and the connection goes on", () =>
    Effect.gen(function*() {
      const connection = yield* connect
      const started = performance.now()
      const exit = yield* Effect.exit(connection.run(echo, [], ["x"], false, undefined, () => {
        throw new Error("unreadable")
      }))
      expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toEqual(new Error("unreadable"))
      expect(performance.now() - started).toBeLessThan(1_000)
      expect(yield* connection.run(echo, [], ["y"], false, undefined)).toEqual([expect.any(String), "y"])
    }).pipe(Effect.scoped))
})
