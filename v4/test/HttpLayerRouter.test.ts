/** The session as an HttpRouter middleware (v3's HttpLayerRouter; examples/layer-router.ts), through a real HTTP server. */
import { HttpRouter, HttpServerResponse } from "effect/http"
import { NodeHttpServer } from "@effect/platform-node"
import { expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { MemorySessionStore, SessionMiddleware } from "../src/index.js"
import { makeBrowser } from "./support/browser.js"

/** examples/layer-router.ts on Effect 4. */
class RouterSession extends SessionMiddleware.Tag<RouterSession>()("RouterSession", {
  schema: Schema.Struct({ visits: Schema.Number }),
  initial: { visits: 0 }
}) {}

/** The routes, with the session middleware provided to them. Needs `RouterSession.layer(...)` and a store. */
const Routes = HttpRouter.addAll([
  HttpRouter.route("GET", "/", Effect.gen(function*() {
    const session = yield* RouterSession
    yield* session.update((s) => ({ visits: s.visits + 1 }))
    return HttpServerResponse.text(`visits: ${(yield* session.get).visits}\n`)
  })),
  HttpRouter.route("POST", "/logout", Effect.flatMap(RouterSession, (s) => s.destroy).pipe(
    Effect.as(HttpServerResponse.text("bye\n"))
  ))
]).pipe(Layer.provide(RouterSession.routerMiddleware.layer))

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
