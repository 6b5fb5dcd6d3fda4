/**
 * Conformance cases of a session's identity and its end: one public id across rotations, revocation of every key
 * (even one a concurrent rotation is making: raced hundreds of times), and nothing that brings an ended session
 * back. Part of the conformance suite, so every backend runs them.
 */
import { describe, expect } from "@effect/vitest"
import { Effect, Random, Result } from "effect"
import { TestClock } from "effect/testing"
import { SessionKey, SessionStore } from "../../src/index.js"

type Test = (
  title: string,
  body: Effect.Effect<void, unknown, SessionStore.SessionStore>,
  options?: SessionStore.Options
) => void

const store = SessionStore.SessionStore

/** A few scheduler turns, a different number each trial, so the two racers interleave differently. */
const jitter = Effect.flatMap(Random.nextIntBetween(0, 6), (turns) => Effect.repeat(Effect.yieldNow, { times: turns }))

/** Trials of each race: hundreds of interleavings per backend. */
const trials = 300

export const revocationCases = (test: Test) =>
  describe("a session's identity and its end", () => {
    test("a session keeps its id across rotations; get and list show it", Effect.gen(function*() {
      const s = yield* store
      const first = yield* s.generate({ subject: "u" })
      const id = SessionKey.id(first)
      expect((yield* s.get(first)).id).toBe(id)
      const second = yield* s.rotate(first, (v) => v)
      const third = yield* s.rotate(second.key, (v) => v)
      expect((yield* s.get(third.key)).id).toBe(id)
      expect((yield* s.get(first)).id).toBe(id) // the stale copy too
      expect((yield* s.list("u")).map((info) => info.id)).toEqual([id])
    }))

    test("an id listed before a rotation still ends the session, every key of it", Effect.gen(function*() {
      const s = yield* store
      const device = yield* s.generate({ subject: "u", value: "logged in" })
      const [listed] = yield* s.list("u")
      const relogin = yield* s.rotate(device, (v) => v) // the device logs in again
      yield* s.revoke(listed!.id, { subject: "u" })
      for (const key of [device, relogin.key]) expect((yield* Effect.flip(s.get(key)))._tag).toBe("NotFound")
      expect(yield* s.list("u")).toEqual([])
      expect((yield* Effect.flip(s.revoke(listed!.id)))._tag).toBe("NotFound") // ended: nothing left to end
    }))

    test("revokeSubject counts sessions, not keys, and ends the stale keys too", Effect.gen(function*() {
      const s = yield* store
      const a = yield* s.generate({ subject: "u" })
      const rotated = yield* s.rotate(a, (v) => v)
      const b = yield* s.generate({ subject: "u" })
      expect(yield* s.revokeSubject("u")).toBe(2)
      for (const key of [a, rotated.key, b]) expect((yield* Effect.flip(s.get(key)))._tag).toBe("NotFound")
    }))

    test("clear ends every key of the session; through a stale key it ends only that key", Effect.gen(function*() {
      const s = yield* store
      const old = yield* s.generate({ value: "v" })
      const next = yield* s.rotate(old, (v) => v)
      yield* s.clear(old) // stale: ends the stale copy alone
      expect((yield* Effect.flip(s.get(old)))._tag).toBe("NotFound")
      expect((yield* s.get(next.key)).value).toBe("v")
      const older = yield* s.generate({ value: "w" })
      const newer = yield* s.rotate(older, (v) => v)
      yield* s.clear(newer.key) // current: ends the session, stale copy included
      for (const key of [older, newer.key]) expect((yield* Effect.flip(s.get(key)))._tag).toBe("NotFound")
    }))

    test("nothing brings an ended session back: every write through its keys is refused, and creates nothing", Effect.gen(function*() {
      const s = yield* store
      const old = yield* s.generate({ value: "v", subject: "u" })
      const { key } = yield* s.rotate(old, (v) => v)
      const read = yield* s.get(key)
      yield* s.revoke(read.id)
      for (const ended of [old, key]) {
        for (const write of [
          Effect.asVoid(s.set(ended, "back")),
          s.touch(ended, { expiry: "1 day" }),
          s.modify(ended, () => "back"),
          s.modify(ended, () => "back", { from: read }),
          s.rotate(ended, () => "back"),
          s.setSubject(ended, "thief")
        ] as ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string }>>) {
          expect((yield* Effect.flip(write))._tag).toBe("NotFound")
        }
        expect((yield* Effect.flip(s.get(ended)))._tag).toBe("NotFound")
      }
      expect(yield* s.list("u")).toEqual([])
      expect(yield* s.list("thief")).toEqual([])
    }))

    test("an ended session's keys stay refused until they would have expired, then cleanup removes them", Effect.gen(function*() {
      const s = yield* store
      const key = yield* s.generate({ value: "v", expiry: "1 hour" })
      yield* s.clear(key)
      yield* TestClock.adjust("59 minutes")
      expect((yield* Effect.flip(s.set(key, "back")))._tag).toBe("NotFound")
      expect(yield* s.deleteExpired).toBe(0)
      yield* TestClock.adjust("2 minutes")
      expect(yield* s.deleteExpired).toBe(1)
    }), { cleanupInterval: 0 })

    test(`revoke racing a rotation of the same session, ${trials} times: no key survives`, Effect.gen(function*() {
      const s = yield* store
      for (let trial = 0; trial < trials; trial++) {
        const key = yield* s.generate({ value: "v", subject: "u" })
        const id = SessionKey.id(key)
        const [rotation, revoked] = yield* Effect.all([
          Effect.result(Effect.andThen(jitter, s.rotate(key, (v) => v))),
          Effect.result(Effect.andThen(jitter, s.revoke(id, { subject: "u" })))
        ], { concurrency: 2 })
        expect(Result.isSuccess(revoked)).toBe(true) // the session existed when the revocation began
        const keys = Result.isSuccess(rotation) ? [key, rotation.success.key] : [key]
        for (const k of keys) expect((yield* Effect.flip(s.get(k)))._tag).toBe("NotFound")
      }
      expect(yield* s.list("u")).toEqual([])
    }))

    test(`revokeSubject racing a rotation of one of the subject's sessions, ${trials} times: it ends and is counted`, Effect.gen(function*() {
      const s = yield* store
      for (let trial = 0; trial < trials; trial++) {
        const key = yield* s.generate({ value: "v", subject: "u" })
        const [rotation, ended] = yield* Effect.all([
          Effect.result(Effect.andThen(jitter, s.rotate(key, (v) => v))),
          Effect.andThen(jitter, s.revokeSubject("u"))
        ], { concurrency: 2 })
        expect(ended).toBe(1)
        const keys = Result.isSuccess(rotation) ? [key, rotation.success.key] : [key]
        for (const k of keys) expect((yield* Effect.flip(s.get(k)))._tag).toBe("NotFound")
      }
      expect(yield* s.list("u")).toEqual([])
    }))

    test(`writes queued before a revocation never bring the session back, ${trials / 3} times`, Effect.gen(function*() {
      const s = yield* store
      for (let trial = 0; trial < trials / 3; trial++) {
        const key = yield* s.generate({ value: "0", subject: "u" })
        const read = yield* s.get(key)
        yield* Effect.all([
          Effect.result(Effect.andThen(jitter, s.modify(key, (n) => n + "1", { from: read }))),
          Effect.result(Effect.andThen(jitter, s.set(key, "set"))),
          Effect.result(Effect.andThen(jitter, s.touch(key))),
          Effect.andThen(jitter, s.revokeSubject("u"))
        ], { concurrency: "unbounded" })
        expect((yield* Effect.flip(s.get(key)))._tag).toBe("NotFound")
      }
    }))
  })
