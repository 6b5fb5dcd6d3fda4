import { describe, expect, layer } from "@effect/vitest"
import { Chunk, DateTime, Duration, Effect, Either, Layer, Stream, TestClock } from "effect"
import { SessionKey, SessionStore } from "../../src/index.js"
import type { InvalidConfig, SessionStoreError } from "../../src/SessionError.js"
import { revocationCases } from "./revocationCases.js"

/** Builds a fresh, empty store for one test. */
export type MakeStore<R> = (
  options?: SessionStore.Options
) => Layer.Layer<SessionStore.SessionStore, InvalidConfig | SessionStoreError, R>

const store = SessionStore.SessionStore

/**
 * The error of `probe` once it is `tag`, polling (bounded) in real time: a clock adjustment wakes a background
 * fiber at once, but its I/O then takes real time. With `advance`, each poll also moves the `TestClock` on by it:
 * a background fiber that had not yet begun its sleep when the test adjusted the clock (Effect 4 starts forked
 * fibers on its scheduler, not at once) is woken by a later adjustment.
 */
export const eventuallyFailsWith = <E extends { readonly _tag: string }, R>(
  probe: Effect.Effect<unknown, E, R>,
  tag: E["_tag"],
  advance?: Duration.DurationInput
) =>
  Effect.gen(function*() {
    let error = yield* Effect.flip(probe)
    for (let i = 0; i < 200 && error._tag !== tag; i++) {
      if (advance !== undefined) yield* TestClock.adjust(advance)
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
      error = yield* Effect.flip(probe)
    }
    return error
  })

const malformedKeys: ReadonlyArray<[string, string]> = [
  ["empty", ""],
  ["too short", "abc"],
  ["too long", SessionKey.generate() + "A"],
  ["wrong alphabet", "+".repeat(42) + "A"],
  ["padding", SessionKey.generate().slice(0, 42) + "="],
  ["non-canonical last character", "A".repeat(42) + "B"],
  ["1 MB string", "A".repeat(1024 * 1024)],
  ["SQL", "'; DROP TABLE effect_sessions; --".padEnd(43, "A")]
]

/**
 * The conformance suite every backend passes: the ocaml-session cases, TestClock-driven expiry, upsert, touch,
 * default periods, cleanup, modify under contention, concurrency and bad input.
 */
export const conformance = <R, E>(
  name: string,
  shared: Layer.Layer<R, E>,
  makeStore: MakeStore<R>
) =>
  layer(shared, { timeout: 60_000 })(name, (it) => {
    const test = (title: string, body: Effect.Effect<void, unknown, SessionStore.SessionStore>, options: SessionStore.Options = {}) =>
      it.effect(title, () => Effect.provide(body, makeStore(options)))

    describe("ocaml-session cases", () => {
      test("generate twice gives different keys", Effect.gen(function*() {
        const s = yield* store
        const a = yield* s.generate()
        const b = yield* s.generate()
        expect(a).not.toBe(b)
        expect(SessionKey.isSessionKey(a)).toBe(true)
        expect(a).toHaveLength(43)
      }))
      test("clear is idempotent", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate()
        yield* s.clear(key)
        yield* s.clear(key)
        yield* s.clear(SessionKey.generate())
      }))
      test("get of an unknown key is NotFound", Effect.gen(function*() {
        const s = yield* store
        const error = yield* Effect.flip(s.get(SessionKey.generate()))
        expect(error._tag).toBe("NotFound")
      }))
      test("generate with a negative expiry is Expired", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ expiry: -1000 })
        expect((yield* Effect.flip(s.get(key)))._tag).toBe("Expired")
      }))
      test("set then get", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate()
        yield* s.set(key, "value")
        expect((yield* s.get(key)).value).toBe("value")
      }))
      test("clear then get is NotFound", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ value: "x" })
        yield* s.clear(key)
        expect((yield* Effect.flip(s.get(key)))._tag).toBe("NotFound")
      }))
      test("generate stores the given value, or the empty string", Effect.gen(function*() {
        const s = yield* store
        expect((yield* s.get(yield* s.generate({ value: "héllo ✓ 😀" }))).value).toBe("héllo ✓ 😀")
        expect((yield* s.get(yield* s.generate())).value).toBe("")
      }))
    })

    describe("expiry", () => {
      test("the default period is one week", Effect.gen(function*() {
        const s = yield* store
        expect(Duration.toMillis(yield* s.defaultPeriod)).toBe(Duration.toMillis(Duration.weeks(1)))
        const { expiresIn } = yield* s.get(yield* s.generate())
        expect(Duration.toMillis(expiresIn)).toBe(Duration.toMillis(Duration.weeks(1)))
      }))
      test("the remaining period shrinks, zero is still valid, past it is Expired", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ value: "v", expiry: "10 seconds" })
        yield* TestClock.adjust("4 seconds")
        expect(Duration.toMillis((yield* s.get(key)).expiresIn)).toBe(6000)
        yield* TestClock.adjust("6 seconds")
        const atEdge = yield* s.get(key)
        expect(Duration.toMillis(atEdge.expiresIn)).toBe(0)
        expect(atEdge.value).toBe("v")
        yield* TestClock.adjust(1)
        expect((yield* Effect.flip(s.get(key)))._tag).toBe("Expired")
      }))
      test("set resets the expiry", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ expiry: "1 minute" })
        yield* TestClock.adjust("50 seconds")
        yield* s.set(key, "again", { expiry: "1 minute" })
        yield* TestClock.adjust("50 seconds")
        expect(yield* s.get(key)).toMatchObject({ value: "again" })
        expect(Duration.toMillis((yield* s.get(key)).expiresIn)).toBe(10_000)
      }))
      test("setDefaultPeriod affects only later operations", Effect.gen(function*() {
        const s = yield* store
        const before = yield* s.generate()
        yield* s.setDefaultPeriod("1 hour")
        expect(Duration.toMillis(yield* s.defaultPeriod)).toBe(3_600_000)
        const after = yield* s.generate()
        expect(Duration.toMillis((yield* s.get(before)).expiresIn)).toBe(Duration.toMillis(Duration.weeks(1)))
        expect(Duration.toMillis((yield* s.get(after)).expiresIn)).toBe(3_600_000)
        yield* s.set(before, "x")
        expect(Duration.toMillis((yield* s.get(before)).expiresIn)).toBe(3_600_000)
      }))
      test("the defaultPeriod option is honoured", Effect.gen(function*() {
        const s = yield* store
        expect(Duration.toMillis((yield* s.get(yield* s.generate())).expiresIn)).toBe(90_000)
      }), { defaultPeriod: "90 seconds" })
    })

    describe("set, touch", () => {
      test("set is an upsert: it creates a missing session and replaces an existing one", Effect.gen(function*() {
        const s = yield* store
        const fresh = SessionKey.generate()
        yield* s.set(fresh, "created")
        expect((yield* s.get(fresh)).value).toBe("created")
        yield* s.set(fresh, "replaced")
        expect((yield* s.get(fresh)).value).toBe("replaced")
      }))
      test("set never brings a session back: an expired key is Expired, an ended one NotFound", Effect.gen(function*() {
        const s = yield* store
        const old = yield* s.generate({ value: "old", expiry: -1 })
        expect((yield* Effect.flip(s.set(old, "new")))._tag).toBe("Expired")
        expect((yield* Effect.flip(s.get(old)))._tag).toBe("Expired")
        const cleared = yield* s.generate({ value: "v" })
        yield* s.clear(cleared)
        expect((yield* Effect.flip(s.set(cleared, "new")))._tag).toBe("NotFound")
        const revoked = yield* s.generate({ value: "v", subject: "u" })
        yield* s.revokeSubject("u")
        expect((yield* Effect.flip(s.set(revoked, "new")))._tag).toBe("NotFound")
        for (const key of [cleared, revoked]) expect((yield* Effect.flip(s.get(key)))._tag).toBe("NotFound")
      }))
      test("set with the value already stored keeps the revision; another value changes it", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ value: "same" })
        const before = yield* s.get(key)
        yield* s.set(key, "same", { expiry: "1 hour" })
        const after = yield* s.get(key)
        expect(after.revision).toBe(before.revision)
        expect(Duration.toMillis(after.expiresIn)).toBe(3_600_000)
        yield* s.set(key, "other")
        expect((yield* s.get(key)).revision).not.toBe(before.revision)
      }))
      test("touch changes the expiry only", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ value: "keep", expiry: "1 minute" })
        yield* TestClock.adjust("30 seconds")
        yield* s.touch(key, { expiry: "1 hour" })
        expect(Duration.toMillis((yield* s.get(key)).expiresIn)).toBe(3_600_000)
        expect((yield* s.get(key)).value).toBe("keep")
        yield* s.touch(key)
        expect(Duration.toMillis((yield* s.get(key)).expiresIn)).toBe(Duration.toMillis(Duration.weeks(1)))
      }))
      test("touch of an unknown key is NotFound, of an expired one Expired", Effect.gen(function*() {
        const s = yield* store
        expect((yield* Effect.flip(s.touch(SessionKey.generate())))._tag).toBe("NotFound")
        const key = yield* s.generate({ expiry: "1 second" })
        yield* TestClock.adjust("2 seconds")
        expect((yield* Effect.flip(s.touch(key)))._tag).toBe("Expired")
        expect((yield* Effect.flip(s.get(key)))._tag).toBe("Expired")
      }))
    })

    describe("cleanup", () => {
      test("deleteExpired removes exactly the expired sessions and returns their count", Effect.gen(function*() {
        const s = yield* store
        const live = yield* Effect.forEach([1, 2, 3, 4, 5], (i) => s.generate({ value: `live${i}`, expiry: "1 hour" }))
        const dead = yield* Effect.forEach([1, 2, 3], () => s.generate({ expiry: "1 minute" }))
        const edge = yield* s.generate({ value: "edge", expiry: "2 minutes" })
        yield* TestClock.adjust("2 minutes")
        expect(yield* s.deleteExpired).toBe(3)
        for (const key of dead) expect((yield* Effect.flip(s.get(key)))._tag).toBe("NotFound")
        for (const [i, key] of live.entries()) expect((yield* s.get(key)).value).toBe(`live${i + 1}`)
        expect((yield* s.get(edge)).value).toBe("edge")
        expect(yield* s.deleteExpired).toBe(0)
      }), { cleanupInterval: 0 })
      test("deleteExpired works through many batches", Effect.gen(function*() {
        const s = yield* store
        yield* Effect.forEach(Array.from({ length: 7 }), () => s.generate({ expiry: -1 }), { concurrency: 7 })
        const keep = yield* s.generate({ value: "kept" })
        expect(yield* s.deleteExpired).toBe(7)
        expect((yield* s.get(keep)).value).toBe("kept")
      }), { cleanupInterval: 0, cleanupBatchSize: 2 })
      test("the cleanup fiber removes expired sessions on its interval", Effect.gen(function*() {
        const s = yield* store
        const dead = yield* s.generate({ expiry: "30 seconds" })
        // Beyond what the wait below can advance the clock (200 steps of a minute), however slow the machine.
        const live = yield* s.generate({ expiry: "1 day" })
        yield* TestClock.adjust("45 seconds")
        expect((yield* Effect.flip(s.get(dead)))._tag).toBe("Expired")
        yield* TestClock.adjust("2 minutes")
        expect((yield* eventuallyFailsWith(s.get(dead), "NotFound", "1 minute"))._tag).toBe("NotFound")
        yield* s.get(live)
      }), { cleanupInterval: "1 minute" })
      test("a cleanup interval of zero disables the fiber", Effect.gen(function*() {
        const s = yield* store
        const dead = yield* s.generate({ expiry: "1 second" })
        yield* TestClock.adjust("1 hour")
        expect((yield* Effect.flip(s.get(dead)))._tag).toBe("Expired")
      }), { cleanupInterval: 0 })
    })

    describe("modify", () => {
      test("100 concurrent increments end at 100", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ value: "0" })
        yield* Effect.forEach(
          Array.from({ length: 100 }),
          () => s.modify(key, (n) => String(Number(n) + 1)),
          { concurrency: "unbounded", discard: true }
        )
        expect((yield* s.get(key)).value).toBe("100")
      }))
      test("modify returns the new value, keeps the expiry unless told", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ value: "a", expiry: "1 minute" })
        yield* TestClock.adjust("20 seconds")
        expect(yield* s.modify(key, (v) => v + "b")).toBe("ab")
        expect(Duration.toMillis((yield* s.get(key)).expiresIn)).toBe(40_000)
        yield* s.modify(key, (v) => v + "c", { expiry: "1 hour" })
        expect(yield* s.get(key)).toMatchObject({ value: "abc" })
        expect(Duration.toMillis((yield* s.get(key)).expiresIn)).toBe(3_600_000)
      }))
      test("modify of an unknown or expired session fails and writes nothing", Effect.gen(function*() {
        const s = yield* store
        const unknown = SessionKey.generate()
        expect((yield* Effect.flip(s.modify(unknown, () => "x")))._tag).toBe("NotFound")
        expect((yield* Effect.flip(s.get(unknown)))._tag).toBe("NotFound")
        const key = yield* s.generate({ value: "old", expiry: -1 })
        expect((yield* Effect.flip(s.modify(key, () => "x")))._tag).toBe("Expired")
      }))
      test("modify from an earlier read: used when current, re-read when stale, never resurrects", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ value: "a" })
        const first = yield* s.get(key)
        expect(yield* s.modify(key, (v) => v + "b", { from: first })).toBe("ab")
        expect(yield* s.modify(key, (v) => v + "c", { from: first })).toBe("abc") // stale: re-read, not lost
        const read = yield* s.get(key)
        expect(read.revision).not.toBe(first.revision)
        yield* s.set(key, "replaced")
        expect(yield* s.modify(key, (v) => v + "!", { from: read })).toBe("replaced!")
        const last = yield* s.get(key)
        yield* s.clear(key)
        expect((yield* Effect.flip(s.modify(key, (v) => v, { from: last })))._tag).toBe("NotFound")
        const brief = yield* s.generate({ value: "x", expiry: "1 second" })
        const briefRead = yield* s.get(brief)
        yield* TestClock.adjust("2 seconds")
        expect((yield* Effect.flip(s.modify(brief, (v) => v, { from: briefRead })))._tag).toBe("Expired")
      }))
      test("modify ignores a `from` read from another session", Effect.gen(function*() {
        const s = yield* store
        const mine = yield* s.generate({ value: "mine" })
        const other = yield* s.generate({ value: "other" })
        const otherRead = yield* s.get(other)
        expect(yield* s.modify(mine, (v) => v + "!", { from: otherRead })).toBe("mine!")
        expect((yield* s.get(other)).value).toBe("other")
      }))
      test("the revision changes with every write of the value", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ value: "a" })
        const revisions = [(yield* s.get(key)).revision]
        yield* s.set(key, "b")
        revisions.push((yield* s.get(key)).revision)
        yield* s.modify(key, (v) => v + "c")
        revisions.push((yield* s.get(key)).revision)
        expect(new Set(revisions).size).toBe(3)
      }))
      test("concurrent modify and set: none lost", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ value: "" })
        yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (i) => s.modify(key, (v) => v + `[${i}]`),
          { concurrency: "unbounded", discard: true }
        )
        const value = (yield* s.get(key)).value
        for (let i = 0; i < 40; i++) expect(value).toContain(`[${i}]`)
      }))
    })

    describe("rotate", () => {
      test("moves the session to a new key; the old key keeps its value, read-only, for the stale period", Effect.gen(function*() {
        const s = yield* store
        const old = yield* s.generate({ value: "a", expiry: "1 hour" })
        const rotation = yield* s.rotate(old, (v) => v + "b", { expiry: "2 hours", staleTimeout: "10 seconds" })
        expect(rotation.key).not.toBe(old)
        expect(SessionKey.isSessionKey(rotation.key)).toBe(true)
        expect(rotation.value).toBe("ab")
        const fresh = yield* s.get(rotation.key)
        expect(fresh).toMatchObject({ value: "ab", rotated: false })
        expect(Duration.toMillis(fresh.expiresIn)).toBe(7_200_000)
        const stale = yield* s.get(old)
        expect(stale).toMatchObject({ value: "a", rotated: true })
        expect(Duration.toMillis(stale.expiresIn)).toBe(10_000)
        for (const write of [
          s.set(old, "x"),
          s.touch(old, { expiry: "1 day" }),
          s.modify(old, () => "x"),
          s.modify(old, () => "x", { from: stale }),
          s.rotate(old, () => "x")
        ]) {
          expect((yield* Effect.flip(write))._tag).toBe("Rotated")
        }
        expect(yield* s.get(old)).toMatchObject({ value: "a", rotated: true })
        expect(Duration.toMillis((yield* s.get(old)).expiresIn)).toBe(10_000)
        yield* TestClock.adjust(10_001)
        expect((yield* Effect.flip(s.get(old)))._tag).toBe("Expired")
        expect((yield* Effect.flip(s.set(old, "revived")))._tag).toBe("Rotated") // never brought back by an upsert
        expect(yield* s.deleteExpired).toBe(1)
        expect((yield* Effect.flip(s.get(old)))._tag).toBe("NotFound")
        expect(yield* s.modify(rotation.key, (v) => v + "c")).toBe("abc")
      }), { cleanupInterval: 0 })
      test("the stale period never extends the old key: it ends no later than the session would have", Effect.gen(function*() {
        const s = yield* store
        const old = yield* s.generate({ value: "v", expiry: "5 seconds" })
        yield* s.rotate(old, (v) => v, { staleTimeout: "1 minute" })
        expect(Duration.toMillis((yield* s.get(old)).expiresIn)).toBe(5_000)
      }))
      test("a stale timeout of zero ends the old key at once; the default is 10 seconds and the default period", Effect.gen(function*() {
        const s = yield* store
        const old = yield* s.generate({ value: "v" })
        const rotation = yield* s.rotate(old, (v) => v, { staleTimeout: 0 })
        expect(Duration.toMillis((yield* s.get(old)).expiresIn)).toBe(0)
        yield* TestClock.adjust(1)
        expect((yield* Effect.flip(s.get(old)))._tag).toBe("Expired")
        const next = yield* s.rotate(rotation.key, (v) => v)
        expect(Duration.toMillis((yield* s.get(rotation.key)).expiresIn)).toBe(10_000)
        expect(Duration.toMillis((yield* s.get(next.key)).expiresIn)).toBe(Duration.toMillis(Duration.weeks(1)))
      }))
      test("writes queued before a rotation reach both keys; writes after it are refused, never dropped", Effect.gen(function*() {
        const s = yield* store
        const old = yield* s.generate({ value: "0" })
        const increment = s.modify(old, (n) => String(Number(n) + 1))
        const outcomes = yield* Effect.forEach(
          Array.from({ length: 101 }, (_, i) => i),
          (i) => Effect.either<unknown, { readonly _tag: string }, never>(i === 50 ? s.rotate(old, (v) => v) : increment),
          { concurrency: "unbounded" }
        )
        const rotation = Either.getOrThrow(outcomes[50]!) as SessionStore.Rotation
        const increments = outcomes.filter((_, i) => i !== 50)
        const written = increments.filter(Either.isRight).length
        expect(written).toBeGreaterThan(0) // both sides of the rotation are exercised
        expect(written).toBeLessThan(100)
        for (const outcome of increments.filter(Either.isLeft)) expect(outcome.left._tag).toBe("Rotated")
        expect((yield* s.get(rotation.key)).value).toBe(String(written))
        expect((yield* s.get(old)).value).toBe(String(written))
      }))
      test("rotate of an unknown, expired or malformed key fails and creates nothing", Effect.gen(function*() {
        const s = yield* store
        expect((yield* Effect.flip(s.rotate(SessionKey.generate(), (v) => v)))._tag).toBe("NotFound")
        expect((yield* Effect.flip(s.rotate("not a key", (v) => v)))._tag).toBe("NotFound")
        const expiredKey = yield* s.generate({ value: "v", expiry: -1 })
        expect((yield* Effect.flip(s.rotate(expiredKey, (v) => v)))._tag).toBe("Expired")
        expect(yield* s.deleteExpired).toBe(1)
      }), { cleanupInterval: 0 })
      test("a rejected new value changes nothing: the old key stays live and writable", Effect.gen(function*() {
        const s = yield* store
        const old = yield* s.generate({ value: "kept", expiry: "1 minute" })
        const error = yield* Effect.flip(s.rotate(old, () => "x".repeat(2000)))
        expect(error._tag).toBe("InvalidValue")
        const bad = yield* Effect.flip(s.rotate(old, (v) => v, { staleTimeout: Infinity }))
        expect(bad._tag).toBe("InvalidExpiry")
        expect(yield* s.get(old)).toMatchObject({ value: "kept", rotated: false })
        expect(Duration.toMillis((yield* s.get(old)).expiresIn)).toBe(60_000)
        expect(yield* s.modify(old, (v) => v + "!")).toBe("kept!")
      }), { maxValueBytes: 1024 })
    })

    describe("subjects, listing, revocation", () => {
      test("a session's owner: set at generate, shown by get and list with a public id, never the key", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ value: "v", expiry: "1 hour", subject: "user-1", audience: "web", metadata: { ua: "Firefox", ip: "10.0.0.1" } })
        expect(yield* s.get(key)).toMatchObject({ subject: "user-1", audience: "web" })
        const listed = yield* s.list("user-1")
        expect(listed).toHaveLength(1)
        expect(listed[0]).toMatchObject({ id: SessionKey.id(key), subject: "user-1", audience: "web", metadata: { ua: "Firefox", ip: "10.0.0.1" } })
        expect(listed[0]!.id).not.toBe(key)
        expect(DateTime.toEpochMillis(listed[0]!.expiresAt) - DateTime.toEpochMillis(listed[0]!.createdAt)).toBe(3_600_000)
        expect(yield* s.list("user-2")).toEqual([])
        expect((yield* s.get(yield* s.generate())).subject).toBeNull()
      }))
      test("setSubject later, and null to remove it; only on live, unrotated sessions", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ expiry: "1 minute" })
        yield* s.setSubject(key, "user-1", { audience: "admin", metadata: { ua: "curl" } })
        expect((yield* s.list("user-1", { audience: "admin" })).map((i) => i.id)).toEqual([SessionKey.id(key)])
        expect(yield* s.list("user-1", { audience: "web" })).toEqual([])
        yield* s.setSubject(key, null)
        expect(yield* s.list("user-1")).toEqual([])
        expect((yield* Effect.flip(s.setSubject(SessionKey.generate(), "x")))._tag).toBe("NotFound")
        expect((yield* Effect.flip(s.setSubject("not a key", "x")))._tag).toBe("NotFound")
        const rotation = yield* s.rotate(key, (v) => v, { expiry: "1 minute" })
        expect((yield* Effect.flip(s.setSubject(key, "x")))._tag).toBe("Rotated")
        yield* TestClock.adjust("2 minutes")
        expect((yield* Effect.flip(s.setSubject(rotation.key, "x")))._tag).toBe("Expired")
      }))
      test("modify sets the owner with the value in one write, or leaves it; never through a rotated key", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ value: "0", subject: "before" })
        expect(yield* s.modify(key, (v) => v + "1")).toBe("01")
        expect(yield* s.get(key)).toMatchObject({ value: "01", subject: "before" })
        // Concurrent writes, one of them with an owner: all values land, and the owner with them.
        yield* Effect.all([
          s.modify(key, (v) => v + "a"),
          s.modify(key, (v) => v + "b", { subject: "after", audience: "web", metadata: { ua: "Edge" } }),
          s.modify(key, (v) => v + "c")
        ], { concurrency: "unbounded" })
        const now = yield* s.get(key)
        expect([...now.value].sort().join("")).toBe("01abc")
        expect(now).toMatchObject({ subject: "after", audience: "web" })
        expect((yield* s.list("after"))[0]).toMatchObject({ id: SessionKey.id(key), metadata: { ua: "Edge" } })
        expect(yield* s.list("before")).toEqual([])
        yield* s.modify(key, (v) => v, { subject: null })
        expect(yield* s.get(key)).toMatchObject({ subject: null, audience: null })
        expect(yield* s.list("after")).toEqual([])
        yield* s.rotate(key, (v) => v)
        expect((yield* Effect.flip(s.modify(key, () => "x", { subject: "thief" })))._tag).toBe("Rotated")
        expect(yield* s.get(key)).toMatchObject({ value: "01abc", subject: null })
        expect(yield* s.list("thief")).toEqual([])
      }))
      test("rotate keeps the owner, or sets it (a login); the stale key is never listed", Effect.gen(function*() {
        const s = yield* store
        const anonymous = yield* s.generate({ value: "cart" })
        const login = yield* s.rotate(anonymous, (v) => v, { subject: "user-1", metadata: { ua: "Safari" } })
        // The session keeps its id: the id of the key it was created with.
        expect((yield* s.list("user-1")).map((i) => i.id)).toEqual([SessionKey.id(anonymous)])
        expect((yield* s.get(anonymous)).subject).toBeNull() // the stale copy keeps what it had
        const again = yield* s.rotate(login.key, (v) => v)
        const listed = yield* s.list("user-1")
        expect(listed.map((i) => i.id)).toEqual([SessionKey.id(anonymous)])
        expect((yield* s.get(again.key)).id).toBe(SessionKey.id(anonymous))
        expect(listed[0]!.metadata).toEqual({ ua: "Safari" })
      }))
      test("list: live sessions of the subject only, most recently seen first", Effect.gen(function*() {
        const s = yield* store
        const first = yield* s.generate({ subject: "u", expiry: "1 hour" })
        yield* TestClock.adjust("1 second")
        const second = yield* s.generate({ subject: "u", expiry: "1 hour" })
        yield* TestClock.adjust("1 second")
        yield* s.generate({ subject: "u", expiry: "1 second" }) // expires
        yield* s.generate({ subject: "other", expiry: "1 hour" })
        yield* TestClock.adjust("2 seconds")
        yield* s.modify(first, (v) => v + "!") // seen again: now the most recent
        const listed = yield* s.list("u")
        expect(listed.map((i) => i.id)).toEqual([SessionKey.id(first), SessionKey.id(second)])
        expect(DateTime.toEpochMillis(listed[0]!.lastSeenAt)).toBeGreaterThan(DateTime.toEpochMillis(listed[0]!.createdAt))
      }))
      test("revoke by id ends the session at once; scoped by subject it touches nobody else's", Effect.gen(function*() {
        const s = yield* store
        const mine = yield* s.generate({ subject: "me" })
        const theirs = yield* s.generate({ subject: "them" })
        expect((yield* Effect.flip(s.revoke(SessionKey.id(theirs), { subject: "me" })))._tag).toBe("NotFound")
        yield* s.get(theirs) // still alive
        yield* s.revoke(SessionKey.id(mine), { subject: "me" })
        expect((yield* Effect.flip(s.get(mine)))._tag).toBe("NotFound")
        yield* s.revoke(SessionKey.id(theirs))
        expect((yield* Effect.flip(s.get(theirs)))._tag).toBe("NotFound")
        for (const id of [SessionKey.id(theirs), SessionKey.id(SessionKey.generate()), "malformed", "", "x".repeat(10_000)]) {
          expect((yield* Effect.flip(s.revoke(id)))._tag).toBe("NotFound")
        }
      }))
      test("revokeSubject: every session of a subject (and audience), except the current one", Effect.gen(function*() {
        const s = yield* store
        const current = yield* s.generate({ subject: "u", audience: "web" })
        const laptop = yield* s.generate({ subject: "u", audience: "web" })
        const phone = yield* s.generate({ subject: "u", audience: "app" })
        const someoneElse = yield* s.generate({ subject: "v", audience: "web" })
        expect(yield* s.revokeSubject("u", { audience: "web", except: SessionKey.id(current) })).toBe(1)
        expect((yield* Effect.flip(s.revokeSubject("u", { except: current.slice(1) })))._tag).toBe("NotFound") // malformed
        expect((yield* Effect.flip(s.get(laptop)))._tag).toBe("NotFound")
        yield* s.get(current)
        yield* s.get(phone)
        expect(yield* s.revokeSubject("u")).toBe(2)
        expect((yield* Effect.flip(s.get(current)))._tag).toBe("NotFound")
        expect((yield* Effect.flip(s.get(phone)))._tag).toBe("NotFound")
        yield* s.get(someoneElse)
        expect(yield* s.revokeSubject("nobody")).toBe(0)
      }))
      test("all: every live session, across pages, ids not keys", Effect.gen(function*() {
        const s = yield* store
        const keys = yield* Effect.forEach(Array.from({ length: 1_050 }, (_, i) => i), (i) =>
          s.generate({ subject: `user-${i % 7}` }), { concurrency: 50 })
        yield* s.generate({ expiry: -1 }) // expired: not listed
        const rotated = yield* s.rotate(keys[0]!, (v) => v) // its stale copy: not listed
        const all = Chunk.toReadonlyArray(yield* Stream.runCollect(s.all))
        expect((yield* s.get(rotated.key)).id).toBe(SessionKey.id(keys[0]!)) // a session keeps its id
        const expected = new Set(keys.map(SessionKey.id))
        expect(all).toHaveLength(expected.size)
        expect(new Set(all.map((i) => i.id))).toEqual(expected)
      }), { cleanupInterval: 0 })
      test("bad subjects, audiences and metadata are InvalidSubject and write nothing", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ subject: "kept" })
        for (const [field, owner] of [
          ["subject", { subject: "" }],
          ["subject", { subject: "x".repeat(257) }],
          ["subject", { subject: "a\u0000b" }],
          ["audience", { subject: "u", audience: "\ud800" }],
          ["metadata", { subject: "u", metadata: { note: "x".repeat(2_000) } }],
          ["metadata", { subject: "u", metadata: { n: 1 as unknown as string } }],
          ["metadata", { subject: "u", metadata: ["a"] as unknown as Record<string, string> }]
        ] as const) {
          expect(yield* Effect.flip(s.generate(owner))).toMatchObject({ _tag: "InvalidSubject", field })
          const { subject, ...rest } = owner as SessionStore.Owner
          expect(yield* Effect.flip(s.setSubject(key, subject ?? null, rest))).toMatchObject({ _tag: "InvalidSubject", field })
          expect(yield* Effect.flip(s.rotate(key, (v) => v, owner))).toMatchObject({ _tag: "InvalidSubject", field })
          expect(yield* Effect.flip(s.modify(key, () => "changed", owner))).toMatchObject({ _tag: "InvalidSubject", field })
        }
        expect((yield* s.get(key)).value).toBe("")
        expect(yield* Effect.flip(s.list(""))).toMatchObject({ _tag: "InvalidSubject" })
        expect(yield* Effect.flip(s.revokeSubject(""))).toMatchObject({ _tag: "InvalidSubject" })
        expect(yield* s.get(key)).toMatchObject({ subject: "kept", rotated: false })
        expect((yield* s.list("kept")).map((i) => i.id)).toEqual([SessionKey.id(key)])
        expect(yield* s.list("u")).toEqual([])
      }))
    })

    revocationCases(test)

    test("200 concurrent operations on distinct keys are all correct", Effect.gen(function*() {
      const s = yield* store
      const ids = Array.from({ length: 200 }, (_, i) => i)
      const keys = yield* Effect.forEach(ids, (i) => s.generate({ value: `v${i}` }), { concurrency: "unbounded" })
      expect(new Set(keys).size).toBe(200)
      const read = yield* Effect.forEach(keys, (key) => s.get(key), { concurrency: "unbounded" })
      expect(read.map((r) => r.value)).toEqual(ids.map((i) => `v${i}`))
      yield* Effect.forEach(ids, (i) => s.set(keys[i]!, `w${i}`), { concurrency: "unbounded", discard: true })
      yield* Effect.forEach(ids, (i) => i % 2 === 0 ? s.clear(keys[i]!) : s.touch(keys[i]!), {
        concurrency: "unbounded",
        discard: true
      })
      const after = yield* Effect.forEach(keys, (key) => Effect.either(s.get(key)), { concurrency: "unbounded" })
      after.forEach((result, i) => {
        if (i % 2 === 0) expect(Either.isLeft(result) && result.left._tag).toBe("NotFound")
        else expect(Either.getOrThrow(result).value).toBe(`w${i}`)
      })
    }))

    describe("bad input", () => {
      for (const [label, key] of malformedKeys) {
        test(`a malformed key (${label}) is NotFound everywhere and changes nothing`, Effect.gen(function*() {
          const s = yield* store
          expect(SessionKey.isSessionKey(key)).toBe(false)
          expect((yield* Effect.flip(s.get(key)))._tag).toBe("NotFound")
          expect((yield* Effect.flip(s.touch(key)))._tag).toBe("NotFound")
          expect((yield* Effect.flip(s.set(key, "x")))._tag).toBe("NotFound")
          expect((yield* Effect.flip(s.modify(key, () => "x")))._tag).toBe("NotFound")
          yield* s.clear(key)
          expect(yield* s.deleteExpired).toBe(0)
        }))
      }
      test("values over maxValueBytes are InvalidValue and write nothing", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ value: "kept" })
        const tooBig = "é".repeat(513) // 1026 bytes
        const error = yield* Effect.flip(s.set(key, tooBig))
        expect(error).toMatchObject({ _tag: "InvalidValue", reason: "TooLarge", bytes: 1026, maxBytes: 1024 })
        expect((yield* Effect.flip(s.generate({ value: tooBig })))._tag).toBe("InvalidValue")
        expect((yield* Effect.flip(s.modify(key, () => tooBig)))._tag).toBe("InvalidValue")
        expect((yield* s.get(key)).value).toBe("kept")
        yield* s.set(key, "x".repeat(1024))
        expect((yield* s.get(key)).value).toHaveLength(1024)
      }), { maxValueBytes: 1024 })
      test("values with NUL or lone surrogates are InvalidValue", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ value: "kept" })
        for (const bad of ["a\u0000b", "\ud800", "x\udc00y"]) {
          expect(yield* Effect.flip(s.set(key, bad))).toMatchObject({ _tag: "InvalidValue", reason: "NotWellFormed" })
        }
        expect((yield* s.get(key)).value).toBe("kept")
      }))
      test("a non-finite expiry is InvalidExpiry and writes nothing", Effect.gen(function*() {
        const s = yield* store
        const key = yield* s.generate({ value: "kept", expiry: "1 minute" })
        for (const expiry of [
          Infinity,
          -Infinity,
          NaN,
          Duration.infinity,
          "forever" as Duration.DurationInput,
          1e16, // beyond what a timestamp column holds: refused up front on every backend
          -1e16,
          1e300,
          Duration.days(366_000)
        ]) {
          expect((yield* Effect.flip(s.generate({ expiry })))._tag).toBe("InvalidExpiry")
          expect((yield* Effect.flip(s.set(key, "changed", { expiry })))._tag).toBe("InvalidExpiry")
          expect((yield* Effect.flip(s.touch(key, { expiry })))._tag).toBe("InvalidExpiry")
          expect((yield* Effect.flip(s.modify(key, () => "changed", { expiry })))._tag).toBe("InvalidExpiry")
          expect((yield* Effect.flip(s.setDefaultPeriod(expiry)))._tag).toBe("InvalidExpiry")
        }
        expect(yield* s.get(key)).toMatchObject({ value: "kept" })
        expect(Duration.toMillis((yield* s.get(key)).expiresIn)).toBe(60_000)
        expect(Duration.toMillis(yield* s.defaultPeriod)).toBe(Duration.toMillis(Duration.weeks(1)))
      }), { cleanupInterval: 0 })
      for (const [option, options] of [
        ["maxValueBytes", { maxValueBytes: 0 }],
        ["maxValueBytes", { maxValueBytes: 1.5 }],
        ["cleanupBatchSize", { cleanupBatchSize: -1 }],
        ["cleanupInterval", { cleanupInterval: Infinity }],
        ["defaultPeriod", { defaultPeriod: -5 }],
        ["defaultPeriod", { defaultPeriod: "a while" as Duration.DurationInput }],
        ["defaultPeriod", { defaultPeriod: 1e16 }],
        ["timeout", { timeout: 0 }],
        ["timeout", { timeout: "never" as Duration.DurationInput }]
      ] as const) {
        it.effect(`a bad ${option} option fails the layer with InvalidConfig`, () =>
          Effect.gen(function*() {
            const error = yield* Effect.flip(Layer.build(makeStore(options)).pipe(Effect.scoped))
            expect(error).toMatchObject({ _tag: "InvalidConfig", option })
          }))
      }
    })
  })
