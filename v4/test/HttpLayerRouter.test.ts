/** The session as an HttpLayerRouter middleware (examples/layer-router.ts), through a real HTTP server. */
import { HttpRouter } from "effect/http"
import { NodeHttpServer } from "@effect/platform-node"
import { expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { RouterSession, Routes } from "../examples/layer-router.js"
import { MemorySessionStore } from "../src/index.js"
import { makeBrowser } from "./support/browser.js"

it.effect("routes given the router middleware reach the session; it is kept across requests and destroyed", () =>
  Effect.gen(function*() {
    yield* Layer.build(HttpRouter.serve(Routes, { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provide(RouterSession.layer()),
      Layer.provide(MemorySessionStore.layer())
    ))
    const browser = yield* makeBrowser
    expect((yield* browser.get("/")).body).toBe("visits: 1\n")
    expect((yield* browser.get("/")).body).toBe("visits: 2\n")
    expect(browser.jar.get("__Host-session")).toMatch(/^[A-Za-z0-9_-]{43}$/)
    yield* browser.post("/logout")
    expect(browser.jar.has("__Host-session")).toBe(false)
    expect((yield* browser.get("/")).body).toBe("visits: 1\n")
  }).pipe(Effect.provide(NodeHttpServer.layerTest), Effect.scoped))
