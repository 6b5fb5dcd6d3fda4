/**
 * Property tests: random sequences of operations run against the memory store (the model) and the PostgreSQL
 * store side by side, under one TestClock; every outcome (value, remaining period, or error tag) must agree.
 */
import { expect, layer } from "@effect/vitest"
import { Arbitrary, Context, Duration, Effect, Layer, Result, Schema } from "effect"
import { TestClock } from "effect/testing"
import { MemorySessionStore, PgSessionStore, SessionKey, SessionStore } from "../src/index.js"
import { ServerPgClient, TestSchema, withSchema } from "./support/database.js"

type Choice<A> = Arbitrary.Arbitrary<A> | { readonly weight: number; readonly arbitrary: Arbitrary.Arbitrary<A> }
type ChoiceOf<C> = C extends Arbitrary.Arbitrary<infer A> ? A : C extends { readonly arbitrary: Arbitrary.Arbitrary<infer A> } ? A : never
/** The few fast-check combinators this test uses, on Effect 4's `Arbitrary` (Effect 4 ships no fast-check). */
const fc = {
  integer: (range: { readonly min: number; readonly max: number }) =>
    Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: range.min, maximum: range.max }))),
  string: (options: { readonly maxLength: number }) => Arbitrary.schema(Schema.String.check(Schema.isMaxLength(options.maxLength))),
  constant: Arbitrary.Constant,
  constantFrom: <const A extends ReadonlyArray<unknown>>(...values: A): Arbitrary.Arbitrary<A[number]> =>
    Arbitrary.map(fc.integer({ min: 0, max: values.length - 1 }), (i) => values[i]),
  oneof: <const C extends ReadonlyArray<Choice<any>>>(...choices: C): Arbitrary.Arbitrary<ChoiceOf<C[number]>> => {
    const weighted = choices.map((c): { weight: number; arbitrary: Arbitrary.Arbitrary<any> } =>
      Arbitrary.isArbitrary(c) ? { weight: 1, arbitrary: c } : c as { weight: number; arbitrary: Arbitrary.Arbitrary<any> }
    )
    const total = weighted.reduce((sum, c) => sum + c.weight, 0)
    return Arbitrary.flatMap(fc.integer({ min: 0, max: total - 1 }), (n) => {
      for (const c of weighted) if ((n -= c.weight) < 0) return c.arbitrary
      return weighted[0]!.arbitrary
    })
  },
  option: <A, N>(arbitrary: Arbitrary.Arbitrary<A>, options: { readonly nil: N }) =>
    fc.oneof({ weight: 1, arbitrary: Arbitrary.Constant(options.nil) }, { weight: 4, arbitrary }) as Arbitrary.Arbitrary<A | N>,
  record: Arbitrary.all,
  array: <A>(item: Arbitrary.Arbitrary<A>, options: Arbitrary.ArrayOptions) => Arbitrary.array(item, options)
}

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
type Command = typeof command extends Arbitrary.Arbitrary<infer C> ? C : never

/** Runs one command on one store; the key of each slot may differ between stores (keys are random). */
const run = (store: SessionStore.Service, keys: Array<string>, c: Command) => {
  const outcome = <A>(effect: Effect.Effect<A, { readonly _tag: string }>) =>
    Effect.map(Effect.result(effect), Result.match({ onFailure: (e) => `error ${e._tag}`, onSuccess: (a) => a as unknown }))
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
        ]).pipe(Effect.map((contexts) => contexts.map((c) => Context.get(c, SessionStore.SessionStore))))
        // Slots start with well-formed keys nobody generated, the same in both stores.
        const initial = Array.from({ length: SLOTS }, () => SessionKey.generate())
        const keys = stores.map(() => [...initial])
        for (const c of commands) {
          const [model, actual] = yield* Effect.forEach(stores, (store, i) => run(store, keys[i]!, c))
          if (c.op !== "advance") expect(actual, JSON.stringify(c)).toEqual(model)
          else yield* TestClock.adjust(0)
        }
      }).pipe(Effect.scoped),
    { arbitrary: { runs: 100 } }
  )
})
