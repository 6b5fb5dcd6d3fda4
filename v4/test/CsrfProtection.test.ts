/**
 * The cross-origin guard: its rule (Go's CrossOriginProtection.Check) branch by branch, its options, and the three
 * integrations over real HTTP with the session middleware inside the guard, where a refused request must never load,
 * create or store a session.
 */
import { HttpClient, HttpClientRequest, HttpRouter, HttpServer, HttpServerRespondable, HttpServerResponse } from "effect/http"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Metric, Option, Ref, Result, Schema } from "effect"
import * as Observability from "../src/internal/observability.js"
import { CsrfProtection, SessionError } from "../src/index.js"
import { Barrier, CountingMemoryStore, layerTestServer, makeApp, StoreCalls, TestSession, toApp } from "./support/testApp.js"

const options: CsrfProtection.Options = {
  trustedOrigins: ["https://admin.example"],
  exemptPaths: ["/hooks/stripe", "/public/*"]
}
const settings = Result.getOrThrow(CsrfProtection.validate(options))

/** The rule's verdict on a request to https://app.example:8443. */
const verdict = (headers: Record<string, string>, request: { method?: string; url?: string } = {}) =>
  CsrfProtection.check(
    {
      method: request.method ?? "POST",
      url: request.url ?? "/transfer",
      headers: { host: "app.example:8443", ...headers }
    },
    settings
  )

const crossSite = { "sec-fetch-site": "cross-site", origin: "https://evil.example" }

describe("the rule", () => {
  it("GET, HEAD and OPTIONS always pass, whatever the headers say", () => {
    for (const method of ["GET", "HEAD", "OPTIONS"]) expect(verdict(crossSite, { method }), method).toBeUndefined()
  })

  it("every other method is checked, as sent: lowercase and unknown methods too", () => {
    for (const method of ["POST", "PUT", "PATCH", "DELETE", "get", "Head", "options", "PROPFIND", ""]) {
      expect(verdict(crossSite, { method }), method).toBe("Sec-Fetch-Site")
    }
  })

  it("Sec-Fetch-Site same-origin or none passes, even with a foreign Origin", () => {
    for (const site of ["same-origin", "none"]) {
      expect(verdict({ "sec-fetch-site": site, origin: "https://evil.example" }), site).toBeUndefined()
    }
  })

  it("any other Sec-Fetch-Site is refused, even with an Origin naming the Host", () => {
    for (const site of ["cross-site", "same-site", "Same-Origin", "same-origin, cross-site", "bogus"]) {
      expect(verdict({ "sec-fetch-site": site, origin: "https://app.example:8443" }), site).toBe("Sec-Fetch-Site")
    }
  })

  it("without Sec-Fetch-Site (or with an empty one), no Origin passes: not a browser, or old and same-origin", () => {
    expect(verdict({})).toBeUndefined()
    expect(verdict({ origin: "" })).toBeUndefined()
    expect(verdict({ "sec-fetch-site": "" })).toBeUndefined()
    expect(verdict({ "sec-fetch-site": "", origin: "https://evil.example" })).toBe("Origin")
  })

  it("without Sec-Fetch-Site, an Origin naming the Host's host and port passes, whatever its scheme", () => {
    for (const origin of ["https://app.example:8443", "http://app.example:8443", "https://APP.example:8443"]) {
      expect(verdict({ origin }), origin).toBeUndefined()
    }
    expect(verdict({ origin: "https://app.example:8443", host: "App.Example:8443" })).toBeUndefined()
  })

  it("without Sec-Fetch-Site, any other Origin is refused: another host or port, none, null, malformed", () => {
    for (
      const origin of [
        "https://evil.example",
        "https://app.example",
        "https://app.example:9443",
        "https://app.example.evil.example:8443",
        "null",
        "app.example:8443",
        "https://app.example:8443:1"
      ]
    ) {
      expect(verdict({ origin }), origin).toBe("Origin")
    }
  })

  it("without a Host header (or an empty one), no Origin matches it, not even one without a host", () => {
    for (const origin of ["null", "file://"]) {
      expect(CsrfProtection.check({ method: "POST", url: "/", headers: { origin } }, settings), origin).toBe("Origin")
      expect(verdict({ origin, host: "" }), origin).toBe("Origin")
    }
  })

  it("a trusted origin passes either check, only when it is exactly the Origin header", () => {
    expect(verdict({ "sec-fetch-site": "cross-site", origin: "https://admin.example" })).toBeUndefined()
    expect(verdict({ "sec-fetch-site": "same-site", origin: "https://admin.example" })).toBeUndefined()
    expect(verdict({ origin: "https://admin.example" })).toBeUndefined()
    for (const origin of ["http://admin.example", "https://admin.example:8443", "https://x.admin.example"]) {
      expect(verdict({ "sec-fetch-site": "cross-site", origin }), origin).toBe("Sec-Fetch-Site")
      expect(verdict({ origin }), origin).toBe("Origin")
    }
  })

  it("exempt paths pass either check: exact paths, and prefixes given with /*, compared undecoded", () => {
    for (const url of ["/hooks/stripe", "/hooks/stripe?event=1", "/public/", "/public/a/b?c"]) {
      expect(verdict(crossSite, { url }), url).toBeUndefined()
      expect(verdict({ origin: "https://evil.example" }, { url }), url).toBeUndefined()
    }
    for (const url of ["/hooks/stripe/", "/hooks/stripe2", "/hooks/%73tripe", "/public", "/publicity", "/x/public/"]) {
      expect(verdict(crossSite, { url }), url).toBe("Sec-Fetch-Site")
    }
  })
})

describe("options", () => {
  const refusal = (options: CsrfProtection.Options) =>
    Option.getOrThrow(Result.getFailure(CsrfProtection.validate(options)))

  it("a trusted origin must be written as a browser sends it: scheme://host[:port]", () => {
    for (const origin of ["https://admin.example", "http://localhost:3000", "http://[::1]:8080", "app://desktop"]) {
      expect(Result.isSuccess(CsrfProtection.validate({ trustedOrigins: [origin] })), origin).toBe(true)
    }
    for (
      const origin of [
        "admin.example",
        "https://admin.example/",
        "https://admin.example/app",
        "https://Admin.example",
        "https://admin.example:443",
        "https://user@admin.example",
        "https://admin.example?x",
        "null",
        "file://",
        ""
      ]
    ) {
      expect(refusal({ trustedOrigins: ["https://ok.example", origin] }), origin).toMatchObject({
        _tag: "InvalidConfig",
        option: "trustedOrigins"
      })
    }
    expect(refusal({ trustedOrigins: ["https://Admin.example/"] }).message)
      .toContain(`(as a browser sends it: "https://admin.example")`)
  })

  it("an exempt path starts with / and has * only as a final /*", () => {
    for (const path of ["/", "/*", "/hooks/stripe", "/hooks/*"]) {
      expect(Result.isSuccess(CsrfProtection.validate({ exemptPaths: [path] })), path).toBe(true)
    }
    for (const path of ["", "hooks", "/hooks*", "/*/x", "/a?b", "/a#b"]) {
      expect(refusal({ exemptPaths: [path] }), path).toMatchObject({ _tag: "InvalidConfig", option: "exemptPaths" })
    }
  })

  it.effect("bad options fail every integration as it is built, never a request", () =>
    Effect.gen(function*() {
      const bad = { trustedOrigins: ["admin.example"] }
      expect(() => CsrfProtection.middleware(bad)).toThrow(SessionError.InvalidConfig)
      expect(yield* Effect.flip(Layer.build(CsrfProtection.apiLayer(bad)))).toBeInstanceOf(SessionError.InvalidConfig)
      const router = yield* Effect.flip(Layer.build(CsrfProtection.routerMiddleware({ exemptPaths: ["x"] }).layer))
      expect(router).toMatchObject({ _tag: "InvalidConfig", option: "exemptPaths" })
    }).pipe(Effect.scoped))
})

describe("CrossOriginForbidden", () => {
  it.effect("renders as an uncacheable 403 text that names the header, not what it held", () =>
    Effect.gen(function*() {
      for (const reason of ["Sec-Fetch-Site", "Origin"] as const) {
        const error = new CsrfProtection.CrossOriginForbidden({ reason })
        const response = yield* HttpServerRespondable.toResponse(error)
        expect(response.status).toBe(403)
        expect(response.headers["cache-control"]).toBe("no-store")
        expect(response.body).toMatchObject({ _tag: "Uint8Array", contentType: "text/plain" })
        expect(error.message).toContain(reason)
      }
    }))
})

/** What a test reads of a response. */
interface Reply {
  readonly status: number
  readonly body: string
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly cookie: string | undefined
}

/**
 * A client that sends what a browser would, headers included: a form POST (urlencoded) or a GET, with an optional
 * session cookie. The Host it sends is `app.example:8443`, so Origins are compared against that.
 */
const send = (method: "GET" | "POST", path: string, headers: Record<string, string> = {}, cookie?: string) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const request = HttpClientRequest.make(method)(path).pipe(
      HttpClientRequest.setHeaders({ host: "app.example:8443", ...headers }),
      cookie === undefined ? (request) => request : HttpClientRequest.setHeader("cookie", cookie),
      method === "POST" ? HttpClientRequest.bodyUrlParams({ name: "mallory" }) : (request) => request
    )
    const response = yield* client.execute(request)
    const setCookie = ([] as Array<string>).concat(response.headers["set-cookie"] ?? [])
    return {
      status: response.status,
      body: yield* response.text,
      headers: response.headers,
      cookie: setCookie.find((line) => line.startsWith("__Host-session="))?.split(";")[0]
    } satisfies Reply
  }).pipe(Effect.scoped)

const sameOrigin = { "sec-fetch-site": "same-origin", origin: "https://app.example:8443" }

/** How many times the session store was called since the last look. */
const storeCalls = Effect.flatMap(StoreCalls, (calls) => Ref.getAndSet(calls, 0))

/**
 * A refused request: the guard's uncacheable 403 for `reason` (text, or JSON from an HttpApi), and no session
 * loaded, created or stored.
 */
const expectRefused = (reply: Reply, reason: CsrfProtection.Reason) =>
  Effect.gen(function*() {
    expect(reply.status).toBe(403)
    expect(reply.headers["cache-control"]).toBe("no-store")
    expect(reply.headers["set-cookie"]).toBeUndefined()
    if (reply.headers["content-type"]?.startsWith("application/json")) {
      expect(JSON.parse(reply.body)).toEqual({ _tag: "CrossOriginForbidden", reason })
    } else {
      expect(reply.body).toBe(`Forbidden: ${new CsrfProtection.CrossOriginForbidden({ reason }).message}`)
    }
    expect(yield* storeCalls).toBe(0)
  })

/** A session cookie, made by a same-origin login; the store's count starts again at zero. */
const loggedIn = Effect.gen(function*() {
  const login = yield* send("POST", "/login", sameOrigin)
  expect(login.status).toBe(200)
  yield* storeCalls
  return login.cookie!
})

const provide = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.provide(Layer.mergeAll(layerTestServer, CountingMemoryStore, Barrier.Default)),
    Effect.scoped
  )

describe("HttpApp middleware, the session inside it", () => {
  const serve = toApp([
    ...makeApp(),
    HttpRouter.route(
      "POST",
      "/hooks/stripe",
      Effect.flatMap(TestSession, (s) => s.update((d) => ({ ...d, visits: d.visits + 1 })))
        .pipe(Effect.as(HttpServerResponse.text("hooked")))
    )
  ]).pipe(
    Effect.flatMap((app) => app.pipe(TestSession.middleware, CsrfProtection.middleware(options), HttpServer.serveEffect())),
    Effect.provide(TestSession.layer())
  )

  it.effect("a cross-site form POST is refused before the session: no cookie, nothing loaded or stored", () =>
    Effect.gen(function*() {
      yield* serve
      yield* expectRefused(yield* send("POST", "/login?name=mallory", crossSite), "Sec-Fetch-Site")
      // With the victim's cookie: the session is not even read, and stays as it was.
      const cookie = yield* loggedIn
      yield* expectRefused(yield* send("POST", "/logout", crossSite, cookie), "Sec-Fetch-Site")
      expect(JSON.parse((yield* send("GET", "/peek", {}, cookie)).body)).toMatchObject({ data: { user: "ada" } })
    }).pipe(provide))

  it.effect("without Sec-Fetch-Site, an Origin not naming the Host is refused (and counted); one naming it passes", () =>
    Effect.gen(function*() {
      yield* serve
      const refusals = Metric.value(Metric.withAttributes(Observability.csrfRefused, { reason: "Origin" }))
      const before = (yield* refusals).count
      yield* expectRefused(yield* send("POST", "/login", { origin: "https://evil.example" }), "Origin")
      yield* expectRefused(yield* send("POST", "/login", { origin: "https://app.example:9443" }), "Origin")
      expect((yield* refusals).count - before).toBe(2)
      const passed = yield* send("POST", "/login", { origin: "https://app.example:8443" })
      expect(passed.status).toBe(200)
      expect(passed.cookie).toMatch(/^__Host-session=/)
    }).pipe(provide))

  it.effect("same-origin POSTs, cross-site GETs, trusted origins, exempt paths and non-browsers pass", () =>
    Effect.gen(function*() {
      yield* serve
      for (
        const [method, path, headers] of [
          ["POST", "/login", sameOrigin],
          ["POST", "/login", { "sec-fetch-site": "none" }],
          ["GET", "/", crossSite],
          ["POST", "/login", { "sec-fetch-site": "same-site", origin: "https://admin.example" }],
          ["POST", "/hooks/stripe", crossSite],
          ["POST", "/login", {}]
        ] as const
      ) {
        const reply = yield* send(method, path, headers)
        expect(reply.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(200)
        expect(reply.cookie, `${method} ${path}`).toMatch(/^__Host-session=/)
      }
    }).pipe(provide))
})

describe("HttpApi middleware", () => {
  const User = Schema.Struct({ user: Schema.NullOr(Schema.String) })
  const Account = HttpApiGroup.make("account")
    .add(
      HttpApiEndpoint.post("login", "/login", {
        payload: Schema.Struct({ name: Schema.String }).pipe(HttpApiSchema.asFormUrlEncoded()),
        success: User
      })
    )
    .add(HttpApiEndpoint.get("me", "/me", { success: User }))

  /** As documented: on the API, so before every group's middleware. */
  class OnTheApi extends HttpApi.make("on-the-api")
    .add(Account.middleware(TestSession.Api))
    .middleware(CsrfProtection.Api)
  {}
  /** On the group, declared after the session: declared last, it runs first. */
  class OnTheGroup extends HttpApi.make("on-the-group")
    .add(Account.middleware(TestSession.Api).middleware(CsrfProtection.Api))
  {}
  /** On the group, declared before the session: the session runs first (the order the docs warn against). */
  class SessionFirst extends HttpApi.make("session-first")
    .add(Account.middleware(CsrfProtection.Api).middleware(TestSession.Api))
  {}

  const serve = (api: typeof OnTheApi | typeof OnTheGroup | typeof SessionFirst) => {
    // The three differ only in where the middleware is declared, not in their endpoints: one set of handlers.
    const sameEndpoints = api as typeof OnTheApi
    const handlers = HttpApiBuilder.group(sameEndpoints, "account", (handlers) =>
      handlers
        .handle("login", ({ payload }) =>
          Effect.gen(function*() {
            const session = yield* TestSession
            yield* session.regenerate
            yield* session.update((s) => ({ ...s, user: payload.name }))
            return { user: payload.name }
          }))
        .handle("me", () => Effect.map(Effect.flatMap(TestSession, (s) => s.get), ({ user }) => ({ user }))))
    return Layer.build(HttpRouter.serve(HttpApiBuilder.layer(sameEndpoints), { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provide(handlers),
      Layer.provide([TestSession.apiLayer, CsrfProtection.apiLayer(options)]),
      Layer.provide(TestSession.layer())
    ))
  }

  it.effect("a cross-site POST is the declared 403 in JSON, and the session is never loaded", () =>
    Effect.gen(function*() {
      yield* serve(OnTheApi)
      const reply = yield* send("POST", "/login", crossSite)
      yield* expectRefused(reply, "Sec-Fetch-Site")
      expect(reply.headers["content-type"]).toMatch(/^application\/json/)
      yield* expectRefused(yield* send("POST", "/login", { origin: "https://evil.example" }), "Origin")
      const passed = yield* send("POST", "/login", sameOrigin)
      expect([passed.status, JSON.parse(passed.body)]).toEqual([200, { user: "mallory" }])
      expect((yield* send("GET", "/me", crossSite, passed.cookie)).body).toBe(`{"user":"mallory"}`)
    }).pipe(provide))

  it.effect("the order of HttpApiMiddleware: API before group, and on a group the one declared last runs first", () =>
    Effect.gen(function*() {
      for (const [api, loadsBeforeRefusal] of [[OnTheApi, 0], [OnTheGroup, 0], [SessionFirst, 1]] as const) {
        yield* Effect.scoped(Effect.gen(function*() {
          yield* serve(api)
          const cookie = yield* loggedIn
          const reply = yield* send("POST", "/login", crossSite, cookie)
          expect(reply.status, api.identifier).toBe(403)
          expect(yield* storeCalls, api.identifier).toBe(loadsBeforeRefusal)
        }))
      }
    }).pipe(Effect.provide(CountingMemoryStore), Effect.provide(layerTestServer)))

  it("the OpenAPI document lists the 403 on every guarded endpoint, with the urlencoded payload", () => {
    for (const spec of [OpenApi.fromApi(OnTheApi), OpenApi.fromApi(OnTheGroup)]) {
      for (const [path, method] of [["/login", "post"], ["/me", "get"]] as const) {
        const operation = (spec.paths[path] as Record<string, any>)[method]
        expect(Object.keys(operation.responses), `${spec.info.title} ${method} ${path}`).toContain("403")
      }
      const login = (spec.paths["/login"] as Record<string, any>).post
      expect(Object.keys(login.requestBody.content)).toEqual(["application/x-www-form-urlencoded"])
    }
  })
})

describe("HttpLayerRouter middleware", () => {
  const Routes = HttpRouter.addAll([
    HttpRouter.route("POST", "/login", Effect.flatMap(TestSession, (s) => s.set({ user: "ada", visits: 0 })).pipe(
      Effect.as(HttpServerResponse.text("logged in"))
    ))
  ])
  const serve = <A, E, R>(app: Layer.Layer<A, E, R>) =>
    Layer.build(HttpRouter.serve(app, { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provide(TestSession.layer())
    ))
  const setups = {
    "combined with the session's": Routes.pipe(
      Layer.provide(TestSession.routerMiddleware.combine(CsrfProtection.routerMiddleware(options)).layer)
    ),
    "global, around the session's": Layer.merge(
      Routes.pipe(Layer.provide(TestSession.routerMiddleware.layer)),
      HttpRouter.middleware(CsrfProtection.middleware(options), { global: true })
    )
  }

  for (const [setup, app] of Object.entries(setups)) {
    it.effect(`${setup}, the guard runs first: a cross-site POST is a 403 and loads nothing`, () =>
      Effect.gen(function*() {
        yield* serve(app)
        yield* expectRefused(yield* send("POST", "/login", crossSite), "Sec-Fetch-Site")
        const cookie = yield* loggedIn
        yield* expectRefused(yield* send("POST", "/login", { origin: "https://evil.example" }, cookie), "Origin")
        expect((yield* send("POST", "/login", { origin: "https://admin.example" })).status).toBe(200)
      }).pipe(provide))
  }

  it.effect("combined the other way round, the session is loaded first (the order the docs warn against)", () =>
    Effect.gen(function*() {
      const sessionOutside = CsrfProtection.routerMiddleware(options).combine(TestSession.routerMiddleware)
      yield* serve(Routes.pipe(Layer.provide(sessionOutside.layer)))
      const cookie = yield* loggedIn
      expect((yield* send("POST", "/login", crossSite, cookie)).status).toBe(403)
      expect(yield* storeCalls).toBe(1)
    }).pipe(provide))
})
