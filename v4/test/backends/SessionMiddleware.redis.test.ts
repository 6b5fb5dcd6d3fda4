/**
 * The HTTP round trips on the Redis store: overlapping requests on one session, and an outage (a black-holed
 * connection through a TCP proxy of the test's own) that answers 503 within the deadline and heals by itself.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { makeBrowser } from "../support/browser.js"
import { shared, storeLayer } from "../support/redis.js"
import * as TcpProxy from "../support/tcpProxy.js"
import { Barrier, serveApp } from "../support/testApp.js"

/** Serves the test app on a Redis store of its own (its keys deleted afterwards). */
const serveOn = (connection: { readonly host: string; readonly port: number }, timeout = 3_000) =>
  Effect.gen(function*() {
    yield* serveApp().pipe(Effect.provide(yield* Layer.build(storeLayer(connection)({ cleanupInterval: 0, timeout }))))
  })

const http = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(Layer.merge(NodeHttpServer.layerTest, Barrier.Default)), Effect.scoped)

describe("SessionMiddleware on Redis", () => {
  it.live("10 truly overlapping requests on one session: every field and every increment survives", () =>
    Effect.gen(function*() {
      yield* serveOn(shared)
      const browser = yield* makeBrowser
      yield* browser.get("/")
      const replies = yield* Effect.forEach(
        Array.from({ length: 10 }, (_, i) => i),
        (i) => browser.get(`/overlap?parties=10&field=${i % 2 === 0 ? "a" : "b"}&value=v${i}`),
        { concurrency: "unbounded" }
      )
      expect(replies.map((r) => r.status)).toEqual(Array(10).fill(200))
      const data = JSON.parse((yield* browser.get("/peek")).body).data
      expect(data.visits).toBe(11)
      expect(data.a).toMatch(/^v[02468]$/)
      expect(data.b).toMatch(/^v[13579]$/)
    }).pipe(http))

  it.live("login rotates the key; the old cookie reads the old session, read-only", () =>
    Effect.gen(function*() {
      yield* serveOn(shared)
      const browser = yield* makeBrowser
      yield* browser.get("/")
      const before = [...browser.jar].map(([name, value]) => `${name}=${value}`).join("; ")
      expect((yield* browser.post("/login?name=ada")).status).toBe(200)
      expect(JSON.parse((yield* browser.get("/peek")).body).data.user).toBe("ada")
      const stale = yield* browser.get("/peek", before)
      expect(JSON.parse(stale.body).data.user).toBeNull()
      expect((yield* browser.get("/", before)).status).toBe(409)
    }).pipe(http))

  it.live("Redis unreachable: 503 within the deadline, never an empty session, and service resumes by itself", () =>
    Effect.gen(function*() {
      const proxy = yield* TcpProxy.make(shared)
      yield* serveOn({ host: "127.0.0.1", port: proxy.port }, 500)
      const browser = yield* makeBrowser
      yield* browser.post("/login?name=ada")
      proxy.setMode({ _tag: "blackhole" })
      const started = Date.now()
      const unhandled = yield* browser.get("/peek")
      expect(Date.now() - started).toBeLessThan(2_000)
      expect(unhandled.status).toBe(503)
      expect(unhandled.headers["retry-after"]).toBe("5")
      expect(yield* browser.get("/guarded")).toMatchObject({ status: 200, body: "handled: degraded mode" })
      const anonymousWrite = yield* browser.get("/", "")
      expect(anonymousWrite.status).toBe(503)
      expect(anonymousWrite.setCookie).toEqual([])
      proxy.setMode({ _tag: "forward" })
      let healed = yield* browser.get("/peek")
      for (let i = 0; i < 50 && healed.status !== 200; i++) {
        yield* Effect.sleep("100 millis")
        healed = yield* browser.get("/peek")
      }
      expect(healed.status).toBe(200)
      expect(JSON.parse(healed.body).data.user).toBe("ada")
    }).pipe(http))
})
