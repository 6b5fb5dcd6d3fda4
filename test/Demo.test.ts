/**
 * The demo's login form over HTTP (the browser test drives the whole demo in Chromium; this one runs everywhere).
 */
import { HttpClient, HttpClientRequest, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { DemoApp, DemoSession } from "../examples/demo/app.js"
import { MemorySessionStore } from "../src/index.js"

const Served = HttpServer.serveEffect(DemoApp).pipe(
  Effect.provide(DemoSession.layer({ cookie: { secure: false } }))
)

/** Posts the login form, then reads the home page with the cookie the login set. */
const login = (name: string) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const posted = yield* client.execute(
      HttpClientRequest.post("/login").pipe(HttpClientRequest.bodyUrlParams({ name }))
    ).pipe(Effect.scoped)
    const cookie = ([] as Array<string>).concat(posted.headers["set-cookie"] ?? [])[0]?.split(";")[0]
    const home = yield* client.execute(
      HttpClientRequest.get("/").pipe(cookie === undefined ? (r) => r : HttpClientRequest.setHeader("cookie", cookie))
    ).pipe(Effect.flatMap((r) => r.text), Effect.scoped)
    return { status: posted.status, home }
  })

layer(Layer.merge(NodeHttpServer.layerTest, MemorySessionStore.layer({ cleanupInterval: 0 })))("the demo's login", (it) => {
  it.scoped("a printable name logs in; a name with a control character is refused and logs nobody in", () =>
    Effect.gen(function*() {
      yield* Served
      const ok = yield* login("ada")
      expect(ok.status).toBe(303)
      expect(ok.home).toContain("Welcome, ada!")
      for (const name of ["ev\u0007il", "a\u001b[31mb", "tab\there", ""]) {
        const refused = yield* login(name)
        expect(refused.status).toBe(303)
        expect(refused.home).toContain("Please enter a name")
        expect(refused.home).not.toContain("Welcome")
      }
    }))
})
