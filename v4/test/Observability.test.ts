/**
 * Spans and metrics, read back: a test tracer records the spans (names, attributes, parents), and metric values are
 * compared before and after. Nothing recorded may contain a session key, its hash, or a value.
 */
import { HttpMiddleware, HttpServer, HttpServerResponse } from "effect/http"
import { NodeHttpServer } from "@effect/platform-node"
import { SqlClient } from "effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Metric, Option, Stream, Tracer } from "effect"
import { TestClock } from "effect/testing"
import * as Observability from "../src/internal/observability.js"
import { MemorySessionStore, PgSessionStore, SessionKey, SessionStore } from "../src/index.js"
import { makeBrowser } from "./support/browser.js"
import { ServerPgClient, TestSchema, withSchema } from "./support/database.js"
import { Barrier, serveApp, TestSession } from "./support/testApp.js"

interface Recorded {
  readonly name: string
  readonly attributes: ReadonlyMap<string, unknown>
  readonly parent: string | undefined
  readonly spanId: string
}

/** A tracer that records every span it makes (it wraps Effect's own, so it counts as one installed). */
const recordingTracer = Effect.map(Effect.tracer, (builtin) => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = builtin.span(options)
      spans.push(span)
      return span
    },
    context: builtin.context
  })
  const recorded = (): Array<Recorded> =>
    spans.map((span) => ({
      name: span.name,
      attributes: span.attributes,
      parent: Option.getOrUndefined(Option.map(span.parent, (p) => p.spanId)),
      spanId: span.spanId
    }))
  return { tracer, recorded }
})

const counterValue = (counter: Metric.Counter<number>, ...tags: ReadonlyArray<readonly [string, string]>) => {
  let metric = counter
  for (const [key, value] of tags) metric = Metric.withAttributes(metric, { [key]: value })
  return Effect.map(Metric.value(metric), (state) => state.count)
}
const histogramCount = (operation: string) =>
  Effect.map(Metric.value(Metric.withAttributes(Observability.operationDuration, { operation })), (state) => state.count)

/** Nothing in the recorded attributes mentions the key, its hash, or the value. */
const expectNoSecrets = (spans: ReadonlyArray<Recorded>, key: string, value: string) => {
  const text = JSON.stringify(spans.map((s) => [s.name, [...s.attributes.entries()]]))
  const hash = Buffer.from(SessionKey.hash(key as SessionKey.SessionKey))
  for (const secret of [key, value, hash.toString("hex"), hash.toString("base64"), hash.toString("base64url")]) {
    expect(text).not.toContain(secret)
  }
}

/** The middleware's session counters, in a fixed order. */
const sessionCounters = Effect.all([
  counterValue(Observability.sessionsCreated),
  counterValue(Observability.sessionsRotated),
  counterValue(Observability.sessionsDestroyed),
  counterValue(Observability.cookiesRejected, ["reason", "malformed"]),
  counterValue(Observability.cookiesRejected, ["reason", "duplicated"]),
  counterValue(Observability.writesRefused, ["reason", "Rotated"])
])

describe("spans", () => {
  it.effect("every store operation is a span with backend, operation and outcome; modify counts its attempts", () =>
    Effect.gen(function*() {
      const { recorded, tracer } = yield* recordingTracer
      const value = "a value that must not be traced"
      const key = yield* Effect.gen(function*() {
        const store = yield* SessionStore.make(MemorySessionStore.backend(), { cleanupInterval: 0 })
        const key = yield* store.generate({ value })
        yield* store.get(key)
        yield* store.modify(key, (v) => v + "!")
        yield* Effect.flip(store.get(SessionKey.generate()))
        const rotated = yield* store.rotate(key, (v) => v, { subject: "ada" })
        yield* store.setSubject(rotated.key, "ada")
        const [info] = yield* store.list("ada")
        yield* store.revokeSubject("ada", { except: info!.id })
        yield* Stream.runDrain(store.all)
        yield* store.revoke(info!.id)
        return key
      }).pipe(Effect.withSpan("request"), Effect.withTracer(tracer))
      const spans = recorded()
      const request = spans.find((s) => s.name === "request")!
      const store = spans.filter((s) => s.name.startsWith("effect-session.store."))
      expect(store.map((s) => s.name)).toEqual([
        "effect-session.store.generate",
        "effect-session.store.get",
        "effect-session.store.modify",
        "effect-session.store.get",
        "effect-session.store.rotate",
        "effect-session.store.setSubject",
        "effect-session.store.list",
        "effect-session.store.revokeSubject",
        "effect-session.store.all",
        "effect-session.store.revoke"
      ])
      for (const span of store) {
        expect(span.parent).toBe(request.spanId)
        expect(span.attributes.get("session.backend")).toBe("memory")
      }
      expect(store.map((s) => s.attributes.get("session.outcome"))).toEqual(
        ["ok", "ok", "ok", "NotFound", "ok", "ok", "ok", "ok", "ok", "ok"]
      )
      expect(store[2]!.attributes.get("session.attempts")).toBe(1)
      expectNoSecrets(spans, key, value)
    }))

  it.effect("the middleware's load and save are children of the request span, the store's calls of theirs", () =>
    Effect.gen(function*() {
      const { recorded, tracer } = yield* recordingTracer
      const app = Effect.gen(function*() {
        const session = yield* TestSession
        yield* session.update((d) => ({ ...d, visits: d.visits + 1 }))
        return HttpServerResponse.text("ok")
      })
      yield* HttpServer.serveEffect(TestSession.middleware(app)).pipe(
        Effect.provide(TestSession.layer()),
        Effect.withTracer(tracer),
        // Effect 3's name for the request span (Effect 4 names it by the method alone)
        Effect.provideService(HttpMiddleware.SpanNameGenerator, (request) => `http.server ${request.method}`)
      )
      const browser = yield* makeBrowser
      yield* browser.get("/")
      yield* browser.get("/")
      const spans = recorded()
      const requests = spans.filter((s) => s.name.startsWith("http.server"))
      expect(requests).toHaveLength(2)
      const [, second] = requests
      const children = spans.filter((s) => s.parent === second!.spanId)
      const load = children.find((s) => s.name === "effect-session.middleware.load")!
      const save = children.find((s) => s.name === "effect-session.middleware.save")!
      expect(load.attributes.get("session.origin")).toBe("Live")
      expect(load.attributes.get("session.cookie")).toBe("present")
      expect(save.attributes.get("session.plan")).toBe("Write")
      expect(spans.find((s) => s.name === "effect-session.store.get")!.parent).toBe(load.spanId)
      expect(spans.find((s) => s.name === "effect-session.store.modify")!.parent).toBe(save.spanId)
      expectNoSecrets(spans, browser.jar.get("__Host-session")!, "visits")
    }).pipe(Effect.provide(Layer.merge(NodeHttpServer.layerTest, MemorySessionStore.layer({ cleanupInterval: 0 }))), Effect.scoped))

  it.effect("without a tracer installed, no span is made at all", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore.make(MemorySessionStore.backend(), { cleanupInterval: 0 })
      const spans = yield* Effect.gen(function*() {
        const key = yield* store.generate()
        yield* store.get(key)
        return yield* Effect.currentSpan.pipe(Effect.option)
      })
      expect(spans._tag).toBe("None")
    }))
})

describe("metrics", () => {
  it.effect("operation durations by operation; merged writes; conflicts", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore.make(MemorySessionStore.backend(), { cleanupInterval: 0 })
      const [gets, merged, conflicts] = yield* Effect.all([
        histogramCount("get"),
        counterValue(Observability.writesMerged),
        counterValue(Observability.writeConflicts)
      ])
      const key = yield* store.generate({ value: "0" })
      yield* Effect.forEach([1, 2, 3], () => store.get(key), { discard: true })
      expect(yield* histogramCount("get")).toBe(gets + 3)
      yield* Effect.forEach(Array.from({ length: 10 }), () => store.modify(key, (n) => String(Number(n) + 1)), {
        concurrency: "unbounded",
        discard: true
      })
      expect(yield* counterValue(Observability.writesMerged)).toBeGreaterThan(merged)
      const stale = yield* store.get(key)
      yield* store.set(key, "changed since")
      yield* store.modify(key, (v) => v + "!", { from: stale }) // starts from a stale read: one conflict, retried
      expect(yield* counterValue(Observability.writeConflicts)).toBe(conflicts + 1)
    }))

  it.effect("a custom backend that never answers: its calls fail at the store's deadline, each counted as a failure", () =>
    Effect.gen(function*() {
      const memory = MemorySessionStore.backend()
      // A backend of the app's own that leaves the deadline to the store, and whose reads and writes hang.
      const silent: SessionStore.Backend<unknown> = {
        ...memory,
        name: "silent",
        enforcesDeadline: false,
        find: () => Effect.never,
        upsert: () => Effect.never
      }
      const store = yield* SessionStore.make(silent, { cleanupInterval: 0, timeout: "2 seconds" })
      const failures = (operation: string) => counterValue(Observability.operationFailures, ["operation", operation])
      const before = yield* Effect.all([failures("get"), failures("set")])
      const key = SessionKey.generate()
      const calls = yield* Effect.forkChild(Effect.all([Effect.flip(store.get(key)), Effect.flip(store.set(key, "v"))], {
        concurrency: 2
      }))
      yield* TestClock.adjust("1999 millis")
      expect(calls.pollUnsafe()).toBeUndefined()
      yield* TestClock.adjust("1 millis")
      const errors = yield* Fiber.join(calls)
      expect(errors.map((error) => error._tag)).toEqual(["SessionStoreError", "SessionStoreError"])
      expect(errors.map((error) => error._tag === "SessionStoreError" && error.operation)).toEqual(["get", "set"])
      expect(yield* Effect.all([failures("get"), failures("set")])).toEqual(before.map((n) => n + 1))
    }))

  it.effect("cleanup runs and the sessions they removed", () =>
    Effect.gen(function*() {
      const [runs, removed] = yield* Effect.all([
        counterValue(Observability.cleanupRuns),
        counterValue(Observability.cleanupRemoved)
      ])
      const store = yield* SessionStore.make(MemorySessionStore.backend(), { cleanupInterval: "1 minute" })
      yield* Effect.forEach([1, 2, 3], () => store.generate({ expiry: "10 seconds" }), { discard: true })
      yield* TestClock.adjust("75 seconds") // one interval of 1 minute ±20%: exactly one run
      expect(yield* counterValue(Observability.cleanupRuns)).toBe(runs + 1)
      expect(yield* counterValue(Observability.cleanupRemoved)).toBe(removed + 3)
    }))

  it.effect("sessions created, rotated and destroyed; cookies rejected; writes refused", () =>
    Effect.gen(function*() {
      const before = yield* sessionCounters
      yield* serveApp()
      const browser = yield* makeBrowser
      yield* browser.get("/") // created
      const stale = browser.jar.get("__Host-session")!
      yield* browser.post("/login") // rotated
      yield* browser.get("/", `__Host-session=${stale}`) // refused: a write through a rotated key
      yield* browser.post("/destroy") // destroyed
      yield* browser.get("/peek", "__Host-session=not-a-key") // rejected: malformed
      yield* browser.get("/peek", `__Host-session=${SessionKey.generate()}; __Host-session=${SessionKey.generate()}`) // duplicated
      const after = yield* sessionCounters
      expect(after.map((n, i) => n - before[i]!)).toEqual([1, 1, 1, 1, 1, 1])
    }).pipe(
      Effect.provide(Layer.mergeAll(NodeHttpServer.layerTest, MemorySessionStore.layer({ cleanupInterval: 0 }), Barrier.Default)),
      Effect.scoped
    ))
})

layer(withSchema(ServerPgClient))("metrics on PostgreSQL", (it) => {
  it.effect("failures by operation: a store that cannot reach its table counts SessionStoreErrors", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const tableName = (yield* TestSchema).table()
      const context = yield* Layer.build(PgSessionStore.layer({ tableName, cleanupInterval: 0 }))
      const store = Context.get(context, SessionStore.SessionStore)
      const key = yield* store.generate()
      const before = yield* counterValue(Observability.operationFailures, ["operation", "get"])
      const [schema, table] = tableName.split(".")
      yield* sql.unsafe(`ALTER TABLE ${tableName} RENAME TO gone_${table}`)
      expect((yield* Effect.flip(store.get(key)))._tag).toBe("SessionStoreError")
      expect(yield* counterValue(Observability.operationFailures, ["operation", "get"])).toBe(before + 1)
      yield* sql.unsafe(`ALTER TABLE ${schema}.gone_${table} RENAME TO ${table}`)
    }))
})
