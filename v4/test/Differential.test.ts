/**
 * Property tests: random sequences of operations run against the memory store (the model) and the PostgreSQL
 * store side by side, under one TestClock; every outcome (value, remaining period, or error tag) must agree.
 */
import { expect, layer } from "@effect/vitest"
import { Duration, Effect, Either, FastCheck as fc, Layer, TestClock } from "effect"
import { MemorySessionStore, PgSessionStore, SessionKey, SessionStore } from "../src/index.js"
import { ServerPgClient, TestSchema, withSchema } from "./support/database.js"

const SLOTS = 4
const value = fc.oneof(
  { weight: 8, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.constantFrom("a\u0000b", "\ud800", "x".repeat(300), "é✓😀") }
)
const expiry = fc.option(
  fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: -2000, max: 120_000 }) },
    { weight: 1, arbitrary: fc.constantFrom(Infinity, NaN) }
  ),
  { nil: undefined }
)
const slot = fc.integer({ min: 0, max: SLOTS - 1 })
const subject = fc.constantFrom("ada", "grace", "")

const command = fc.oneof(
  fc.record({ op: fc.constant("generate" as const), slot, value, expiry }),
  fc.record({ op: fc.constant("set" as const), slot, value, expiry }),
  fc.record({ op: fc.constant("get" as const), slot }),
  fc.record({ op: fc.constant("touch" as const), slot, expiry }),
  fc.record({ op: fc.constant("clear" as const), slot }),
  fc.record({ op: fc.constant("modify" as const), slot, value, expiry }),
  fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 90_000 }) }),
  fc.record({ op: fc.constant("deleteExpired" as const) }),
  fc.record({ op: fc.constant("rotate" as const), slot, to: slot, subject: fc.option(subject, { nil: undefined }) }),
  fc.record({ op: fc.constant("owned" as const), slot, subject, value }),
  fc.record({ op: fc.constant("setSubject" as const), slot, subject: fc.option(subject, { nil: null }) }),
  fc.record({ op: fc.constant("list" as const), subject }),
  fc.record({ op: fc.constant("revoke" as const), slot, scoped: fc.option(subject, { nil: undefined }) }),
  fc.record({ op: fc.constant("revokeSubject" as const), subject, except: fc.option(slot, { nil: undefined }) })
)
type Command = typeof command extends fc.Arbitrary<infer C> ? C : never

/** Runs one command on one store; the key of each slot may differ between stores (keys are random). */
const run = (store: SessionStore.Service, keys: Array<string>, c: Command) => {
  const outcome = <A>(effect: Effect.Effect<A, { readonly _tag: string }>) =>
    Effect.map(Effect.either(effect), Either.match({ onLeft: (e) => `error ${e._tag}`, onRight: (a) => a as unknown }))
  switch (c.op) {
    case "generate":
      return outcome(Effect.map(store.generate({ value: c.value, expiry: c.expiry }), (key) => {
        keys[c.slot] = key
        return "generated"
      }))
    case "set":
      return outcome(store.set(keys[c.slot]!, c.value, { expiry: c.expiry }))
    case "get":
      return outcome(Effect.map(store.get(keys[c.slot]!), (s) => [s.value, Duration.toMillis(s.expiresIn)]))
    case "touch":
      return outcome(store.touch(keys[c.slot]!, { expiry: c.expiry }))
    case "clear":
      return outcome(store.clear(keys[c.slot]!))
    case "modify":
      return outcome(store.modify(keys[c.slot]!, (v) => (v + c.value).slice(-40), { expiry: c.expiry }))
    case "advance":
      return Effect.as(TestClock.adjust(c.ms), "advanced")
    case "deleteExpired":
      return outcome(store.deleteExpired)
    case "rotate":
      return outcome(Effect.map(store.rotate(keys[c.slot]!, (v) => v + "~", { subject: c.subject }), (r) => {
        keys[c.to] = r.key
        return ["rotated", r.value]
      }))
    case "owned":
      return outcome(Effect.map(store.generate({ value: c.value, subject: c.subject }), (key) => {
        keys[c.slot] = key
        return "generated"
      }))
    case "setSubject":
      return outcome(store.setSubject(keys[c.slot]!, c.subject))
    case "list":
      // Sessions by slot (keys differ between the stores), as a set: equal times may list in any order.
      return outcome(Effect.map(store.list(c.subject), (sessions) =>
        sessions.map((info) => keys.findIndex((key) => SessionKey.isSessionKey(key) && SessionKey.id(key) === info.id)).sort()))
    case "revoke":
      return outcome(store.revoke(SessionKey.id(keys[c.slot]! as SessionKey.SessionKey), { subject: c.scoped }))
    case "revokeSubject":
      return outcome(store.revokeSubject(c.subject, {
        except: c.except === undefined ? undefined : SessionKey.id(keys[c.except]! as SessionKey.SessionKey)
      }))
  }
}

const options = { cleanupInterval: 0, maxValueBytes: 256 }

layer(withSchema(ServerPgClient), { timeout: 120_000 })("memory store and PostgreSQL store agree", (it) => {
  it.effect.prop(
    "on random operation sequences",
    [fc.array(command, { minLength: 1, maxLength: 25 })],
    ([commands]) =>
      Effect.gen(function*() {
        const tableName = (yield* TestSchema).table()
        const stores = yield* Effect.all([
          Layer.build(MemorySessionStore.layer(options)),
          Layer.build(PgSessionStore.layer({ ...options, tableName }))
        ]).pipe(Effect.map((contexts) => contexts.map((c) => c.unsafeMap.get(SessionStore.SessionStore.key) as SessionStore.Service)))
        // Slots start with well-formed keys nobody generated, the same in both stores.
        const initial = Array.from({ length: SLOTS }, () => SessionKey.generate())
        const keys = stores.map(() => [...initial])
        for (const c of commands) {
          const [model, actual] = yield* Effect.forEach(stores, (store, i) => run(store, keys[i]!, c))
          if (c.op !== "advance") expect(actual, JSON.stringify(c)).toEqual(model)
          else yield* TestClock.adjust(0)
        }
      }).pipe(Effect.scoped),
    { fastCheck: { numRuns: 100 } }
  )
})
