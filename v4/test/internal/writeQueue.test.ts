/**
 * The write queue through the store: concurrent writers on one key are merged into few statements, and writers in
 * separate store instances (separate processes sharing one database) still lose nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Logger } from "effect"
import { MemorySessionStore, SessionStore } from "../../src/index.js"

/** A backend whose statements are counted. */
const counting = (backend: SessionStore.Backend<never>) => {
  const calls = { find: 0, compareAndSet: 0, rotate: 0 }
  const counted: SessionStore.Backend<never> = {
    ...backend,
    find: (id) => Effect.andThen(Effect.sync(() => calls.find++), backend.find(id)),
    compareAndSet: (...args) => Effect.andThen(Effect.sync(() => calls.compareAndSet++), backend.compareAndSet(...args)),
    rotate: (...args) => Effect.andThen(Effect.sync(() => calls.rotate++), backend.rotate(...args))
  }
  return { calls, counted }
}

const increment = (n: string) => String(Number(n) + 1)

describe("the write queue", () => {
  it.effect("64 concurrent modifies of one session are merged: none lost, a few statements in all", () =>
    Effect.gen(function*() {
      const { calls, counted } = counting(MemorySessionStore.backend())
      const store = yield* SessionStore.make(counted, { cleanupInterval: 0 })
      const key = yield* store.generate({ value: "0" })
      const results = yield* Effect.forEach(Array.from({ length: 64 }), () => store.modify(key, increment), {
        concurrency: "unbounded"
      })
      expect((yield* store.get(key)).value).toBe("64")
      expect([...results].sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 64 }, (_, i) => String(i + 1)))
      expect(calls.compareAndSet).toBeLessThanOrEqual(4)
      expect(calls.find).toBeLessThanOrEqual(4)
    }))

  it.live("two store instances on one database (two processes), 64 writers each: none lost, ≤ 3 statements per write", () =>
    Effect.gen(function*() {
      const { calls, counted } = counting(MemorySessionStore.backend())
      const first = yield* SessionStore.make(counted, { cleanupInterval: 0 })
      const second = yield* SessionStore.make(counted, { cleanupInterval: 0 })
      const key = yield* first.generate({ value: "0" })
      const writers = Array.from({ length: 128 }, (_, i) => i % 2 === 0 ? first : second)
      yield* Effect.forEach(writers, (store) => Effect.andThen(Effect.sleep(Math.random() * 5), store.modify(key, increment)), {
        concurrency: "unbounded",
        discard: true
      })
      expect((yield* first.get(key)).value).toBe("128")
      expect((calls.find - 1 + calls.compareAndSet) / 128).toBeLessThanOrEqual(3)
    }).pipe(Effect.scoped))

  it.effect("a function that throws fails its own caller only; the writes merged with it are stored", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore.make(MemorySessionStore.backend(), { cleanupInterval: 0 })
      const key = yield* store.generate({ value: "a" })
      const outcomes = yield* Effect.forEach(
        [(v: string) => v + "b", (): string => {
          throw new Error("bug in f")
        }, (v: string) => v + "c"],
        (f) => Effect.exit(store.modify(key, f)),
        { concurrency: "unbounded" }
      )
      expect(Exit.isSuccess(outcomes[0]!) && Exit.isSuccess(outcomes[2]!)).toBe(true)
      expect(Exit.isFailure(outcomes[1]!) && Cause.hasDies(outcomes[1].cause)).toBe(true)
      expect((yield* store.get(key)).value).toBe("abc")
    }))

  it.effect("writes merged with a value that is too large keep theirs; only that one fails", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore.make(MemorySessionStore.backend(), { cleanupInterval: 0, maxValueBytes: 10 })
      const key = yield* store.generate({ value: "a" })
      const outcomes = yield* Effect.forEach(
        [(v: string) => v + "b", () => "x".repeat(11), (v: string) => v + "c"],
        (f) => Effect.result(store.modify(key, f)),
        { concurrency: "unbounded" }
      )
      expect(outcomes.map((o) => o._tag)).toEqual(["Success", "Failure", "Success"])
      expect((yield* store.get(key)).value).toBe("abc")
    }))

  const logged: Array<string> = []
  it.live("a defect in a batch reaches its callers at once (not at their deadline), is logged, and the queue goes on", () =>
    Effect.gen(function*() {
      const inner = MemorySessionStore.backend()
      let dies = true
      const dying: SessionStore.Backend<never> = {
        ...inner,
        compareAndSet: (...args) =>
          dies ? Effect.suspend(() => ((dies = false), Effect.die(new Error("a bug in a backend")))) : inner.compareAndSet(...args)
      }
      const store = yield* SessionStore.make(dying, { cleanupInterval: 0, timeout: "5 seconds" })
      const key = yield* store.generate({ value: "0" })
      const started = Date.now()
      const exit = yield* Effect.exit(store.modify(key, increment))
      expect(Date.now() - started).toBeLessThan(1_000)
      expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true)
      expect(logged).toEqual([expect.stringMatching(/^write queue \(defect\) failed: /)])
      expect(yield* store.modify(key, increment)).toBe("1")
    }).pipe(
      Effect.provide(Logger.layer([Logger.make(({ message }) => logged.push(`${message}`))])),
      Effect.scoped
    ))
})
