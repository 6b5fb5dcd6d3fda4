/**
 * A consumer of the Redis store (127.0.0.1:6379, a key prefix of its own whose keys expire within seconds). `node out/redis.js
 * absent` runs before ioredis is installed: the root entry and the Redis entry load, and building the store fails
 * with a typed SessionStoreError. Without the argument, after the README's install: a round trip.
 */
import { Effect } from "effect"
import { RedisSessionStore, SessionStore } from "effect-session"
import * as RedisEntry from "effect-session/RedisSessionStore"

const keyPrefix = `consumer:${process.pid}:${Date.now()}:`

const roundTrip = Effect.gen(function*() {
  const store = yield* SessionStore.SessionStore
  const key = yield* store.generate({ value: "hello", subject: "ada" })
  if ((yield* store.get(key)).value !== "hello") throw new Error("redis round trip")
  const rotation = yield* store.rotate(key, (v) => v + "!")
  if ((yield* store.list("ada")).length !== 1) throw new Error("redis list")
  yield* store.revokeSubject("ada")
  yield* store.clear(rotation.key)
  return "consumer (Redis) OK: generate, get, rotate, list, revokeSubject"
})

const absent = Effect.flip(Effect.scoped(RedisEntry.make({ keyPrefix }))).pipe(
  Effect.map((error) => {
    if (error._tag !== "SessionStoreError") throw new Error(`expected SessionStoreError, got ${error._tag}`)
    return `consumer (Redis) OK without ioredis: ${error.message}`
  })
)

const program: Effect.Effect<string, unknown> = process.argv[2] === "absent"
  ? absent
  // Short-lived: everything it writes leaves Redis by itself within seconds.
  : roundTrip.pipe(Effect.provide(RedisSessionStore.layer({ keyPrefix, cleanupInterval: 0, defaultPeriod: "1 second", ttlMargin: "1 second" })))

program.pipe(Effect.runPromise).then(console.log, (error) => {
  console.error(error)
  process.exit(1)
})
