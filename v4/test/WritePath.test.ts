/**
 * One write request, counted: the stored value is decoded once, the new data encoded once (the encoding made when
 * the handler changed it is the one stored), and the clock read three times: once by the middleware (every expiry
 * the request saves is computed from that one reading), once by each store operation that checks an expiry at the
 * moment it runs (the load's `get`, the save's compare-and-set).
 */
import { expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Layer, Schema, SchemaTransformation } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import { MemorySessionStore, SessionMiddleware, SessionStore, SessionTesting } from "../src/index.js"

const counts = { encodes: 0, decodes: 0, clockReads: 0 }

/** A schema that counts its encodings and decodings. */
const Counted = Schema.Struct({ n: Schema.Number }).pipe(
  Schema.decodeTo(Schema.Struct({ n: Schema.Number }), SchemaTransformation.transform({
    decode: (data: { readonly n: number }) => (counts.decodes++, data),
    encode: (data: { readonly n: number }) => (counts.encodes++, data)
  }))
)

class CountedSession extends SessionMiddleware.Tag<CountedSession>()("test/CountedSession", {
  schema: Counted,
  initial: { n: 0 }
}) {}

const app = HttpRouter.toHttpEffect(HttpRouter.addAll([
  HttpRouter.route("POST", "/", Effect.flatMap(CountedSession, (s) => s.update((d) => ({ n: d.n + 1 }))).pipe(
    Effect.as(HttpServerResponse.text("ok"))
  ))
]))

/** `clock`, counting every reading of the time. */
const counting = (clock: Clock.Clock): Clock.Clock =>
  new Proxy(clock, {
    get(target, property, receiver) {
      if (property === "currentTimeMillis") return Effect.suspend(() => (counts.clockReads++, target.currentTimeMillis))
      if (property === "currentTimeMillisUnsafe") return () => (counts.clockReads++, target.currentTimeMillisUnsafe())
      const value = Reflect.get(target, property, receiver)
      return typeof value === "function" ? value.bind(target) : value
    }
  })

it.effect("a write request: one decode, one encode, one clock reading in the middleware and one per store operation", () =>
  Effect.gen(function*() {
    const client = yield* SessionTesting.makeClient(CountedSession, yield* app)
    yield* client.seed({ n: 1 })
    Object.assign(counts, { encodes: 0, decodes: 0, clockReads: 0 })
    const reply = yield* client.post("/").pipe(Effect.provideService(Clock.Clock, counting(yield* Clock.Clock)))
    expect(reply.status).toBe(200)
    expect(counts).toEqual({ encodes: 1, decodes: 1, clockReads: 3 })
    expect(yield* client.data).toMatchObject({ value: { n: 2 } })
  }).pipe(Effect.provide(SessionTesting.layer(CountedSession))))

/** A memory store whose compare-and-set takes `delay` (of TestClock time) before it writes: a slow database. */
const slowWrites = (delay: Duration.Input) =>
  Layer.effect(
    SessionStore.SessionStore,
    Effect.suspend(() => {
      const backend = MemorySessionStore.backend()
      return SessionStore.make({
        ...backend,
        compareAndSet: (write) => Effect.andThen(TestClock.adjust(delay), backend.compareAndSet(write))
      }, { cleanupInterval: 0 })
    })
  )

it.effect("a write that waits never pushes the stored expiry past the absolute timeout", () =>
  Effect.gen(function*() {
    const client = yield* SessionTesting.makeClient(CountedSession, yield* app)
    yield* client.seed({ n: 1 })
    const key = (yield* client.cookie).pipe((cookie) => cookie._tag === "Some" ? cookie.value : "")
    yield* TestClock.adjust("25 minutes")
    expect((yield* client.post("/")).status).toBe(200) // renewed to 55 min; its compare-and-set took 5 s
    yield* TestClock.adjust(Duration.sum(Duration.minutes(24), Duration.seconds(55))) // 50 min after the seed
    expect((yield* client.post("/")).status).toBe(200) // renewal due: the absolute timeout caps it at 60 min
    const stored = yield* Effect.flatMap(SessionStore.SessionStore, (store) => store.get(key))
    // The write landed at 50 min 5 s; the session still ends 60 minutes after the seed, not 5 s later.
    expect(Duration.toMillis(stored.expiresIn)).toBe(Duration.toMillis(Duration.sum(Duration.minutes(9), Duration.seconds(55))))
  }).pipe(
    Effect.provide(Layer.merge(CountedSession.layer({ idleTimeout: "30 minutes", absoluteTimeout: "1 hour" }), slowWrites("5 seconds")))
  ))
