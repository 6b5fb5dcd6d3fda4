/**
 * The demo over HTTP (the browser test drives the whole demo in Chromium; this one runs everywhere): its login
 * form, and what makes it a model app: CSRF refused two ways, no session for a passer-by, small bodies only,
 * pages that cannot be framed, a logout that leaves nothing readable.
 */
import { HttpClient, HttpClientRequest, HttpRouter, HttpServer } from "effect/http"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { DemoApp, demoOptions, DemoSession } from "../examples/demo/app.js"
import { MemorySessionStore } from "../src/index.js"
import { layerTestServer } from "./support/testApp.js"

const Served = HttpRouter.toHttpEffect(DemoApp).pipe(
  Effect.flatMap(HttpServer.serveEffect()),
  Effect.provide(DemoSession.layer({ ...demoOptions, cookie: { secure: false } }))
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

/** A request with a cookie header, headers and a form body; its status, body, headers and the cookie it set. */
const send = (method: "GET" | "POST", path: string, init: {
  readonly cookie?: string | undefined
  readonly headers?: Record<string, string>
  readonly form?: Record<string, string>
  readonly body?: string
} = {}) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    let request = HttpClientRequest.make(method)(path).pipe(HttpClientRequest.setHeaders(init.headers ?? {}))
    if (init.cookie !== undefined) request = HttpClientRequest.setHeader(request, "cookie", init.cookie)
    if (init.form !== undefined) request = HttpClientRequest.bodyUrlParams(request, init.form)
    if (init.body !== undefined) request = HttpClientRequest.bodyText(request, init.body, "application/x-www-form-urlencoded")
    const response = yield* client.execute(request)
    const cookie = ([] as Array<string>).concat(response.headers["set-cookie"] ?? [])[0]?.split(";")[0]
    return { status: response.status, headers: response.headers, body: yield* response.text, cookie }
  }).pipe(Effect.scoped)

const tokenIn = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1]

layer(Layer.merge(layerTestServer, MemorySessionStore.layer({ cleanupInterval: 0 })))("the demo's login", (it) => {
  it.effect("a printable name logs in; a name with a control character is refused and logs nobody in", () =>
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

  it.effect("a model app: cross-site forms refused, no session for a passer-by, small bodies, no framing, logout leaves nothing", () =>
    Effect.gen(function*() {
      yield* Served
      for (let i = 0; i < 20; i++) {
        const home = yield* send("GET", "/")
        expect(home.cookie).toBeUndefined() // no session, no row, for looking
        expect(home.headers["content-security-policy"]).toContain("frame-ancestors 'none'")
        expect(home.headers["x-frame-options"]).toBe("DENY")
      }
      for (const path of ["/login", "/logout", "/forget", "/sessions/logout-others", "/sessions/revoke"]) {
        const forged = yield* send("POST", path, {
          headers: { origin: "https://evil.example", "sec-fetch-site": "cross-site" },
          form: { name: "attacker" }
        })
        expect(forged.status, path).toBe(403)
        expect(forged.cookie).toBeUndefined()
      }
      expect((yield* send("POST", "/login", { body: `name=${"x".repeat(100_000)}` })).status).toBe(413)

      const login = yield* send("POST", "/login", { form: { name: "ada" } })
      const loggedIn = login.cookie!
      const page = yield* send("GET", "/", { cookie: loggedIn })
      expect(page.body).toContain("Hello, <strong id=\"user\">ada</strong>")
      const token = tokenIn(page.body)!
      expect(token).toMatch(/^[A-Za-z0-9_-]{86}$/)
      expect((yield* send("POST", "/logout", { cookie: loggedIn })).status).toBe(403) // no token
      const logout = yield* send("POST", "/logout", { cookie: loggedIn, form: { _csrf: token } })
      expect(logout.status).toBe(303)
      expect(logout.cookie).not.toBe(loggedIn)
      const old = yield* send("GET", "/", { cookie: loggedIn })
      expect(old.body).not.toContain("ada") // the logged-in key reads nothing: no grace copy after a logout
      expect((yield* send("GET", "/", { cookie: logout.cookie! })).body).toContain("Goodbye, ada")
    }))
})
