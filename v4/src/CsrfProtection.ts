/**
 * Cross-site request forgery (CSRF) protection from the headers browsers send, by the rule of Go's
 * `net/http.CrossOriginProtection`: a request that may change state (any method but `GET`, `HEAD`, `OPTIONS`) is
 * refused with a `403` when
 * - its `Sec-Fetch-Site` is anything but `same-origin` or `none` (the user typed the URL), or
 * - without that header (older browsers), its `Origin` does not name its `Host` (the scheme is not compared),
 * unless it comes from a trusted origin or goes to an exempt path. A request with neither header passes: it is
 * same-origin from an old browser, or it does not come from a browser and so cannot ride a victim's cookies.
 *
 * Put the guard outside the session middleware, so a refused request never loads or creates a session.
 *
 * @since 0.3.0
 */
import { HttpEffect, HttpRouter, HttpServerRequest, HttpServerRespondable, HttpServerResponse } from "effect/http"
import { HttpApiMiddleware } from "effect/http-api"
import { Effect, identity, Layer, Result, Schema } from "effect"
import * as Observability from "./internal/observability.js"
import { InvalidConfig } from "./SessionError.js"

const explanations: Record<Reason, string> = {
  "Sec-Fetch-Site": "cross-origin request refused: the browser sent it from another origin (Sec-Fetch-Site)",
  Origin: "cross-origin request refused: its Origin does not match its Host"
}

const noStore = { "cache-control": "no-store" }

/** An HTTP app: v3's `HttpApp.Default`, an effect answering the request in its context. */
type App<E, R> = Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>

/** A 403 saying why, not to be cached. */
const forbidden = (message: string) => HttpServerResponse.text(`Forbidden: ${message}`, { status: 403, headers: noStore })

/**
 * Which header gave a refused request away: `Sec-Fetch-Site` (the browser said it was not same-origin) or `Origin`
 * (without `Sec-Fetch-Site`, its origin did not name the request's host).
 *
 * @since 0.3.0
 * @category models
 */
export type Reason = CrossOriginForbidden["reason"]

/**
 * A state-changing request came from another origin. Renders as `403 Forbidden` (text, `Cache-Control: no-store`);
 * an HttpApi encodes it as JSON, `{ _tag, reason }`. It says which header refused the request, never what it held.
 *
 * @since 0.3.0
 * @category errors
 */
export class CrossOriginForbidden extends Schema.TaggedError<CrossOriginForbidden>("effect-session/CrossOriginForbidden")("CrossOriginForbidden", {
  reason: Schema.Literals(["Sec-Fetch-Site", "Origin"])
}, { httpApiStatus: 403, description: "A cross-origin request that could change state, refused" })
  implements HttpServerRespondable.Respondable
{
  override get message() {
    return explanations[this.reason]
  }
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(forbidden(this.message))
  }
}

/**
 * A state-changing request did not carry the session's CSRF token (`"Missing"`), or carried another one
 * (`"Mismatch"`): what the session middleware answers when its `csrfTokens` option is on. Renders as
 * `403 Forbidden` (text, `Cache-Control: no-store`); an HttpApi encodes it as JSON, `{ _tag, reason }`. Nothing of
 * the request reaches the session.
 *
 * @since 0.3.0
 * @category errors
 */
export class CsrfTokenInvalid extends Schema.TaggedError<CsrfTokenInvalid>("effect-session/CsrfTokenInvalid")(
  "CsrfTokenInvalid",
  { reason: Schema.Literals(["Missing", "Mismatch"]) },
  { httpApiStatus: 403, description: "A state-changing request without the session's CSRF token" }
) implements HttpServerRespondable.Respondable {
  override get message() {
    return tokenExplanations[this.reason]
  }
  [HttpServerRespondable.symbol]() {
    return Effect.succeed(forbidden(this.message))
  }
}

const tokenExplanations: Record<CsrfTokenInvalid["reason"], string> = {
  Missing: "request refused: it carries no CSRF token",
  Mismatch: "request refused: its CSRF token is not this session's"
}

/**
 * Options of the guard; both are checked when it is built.
 *
 * @since 0.3.0
 * @category options
 */
export interface Options {
  /**
   * Origins allowed to send state-changing requests, written as browsers send them in `Origin`:
   * `scheme://host[:port]`, lowercase, without a default port or a path (`"https://admin.example.com"`).
   */
  readonly trustedOrigins?: ReadonlyArray<string> | undefined
  /**
   * Paths never checked (webhooks, say): an exact path (`"/hooks/stripe"`), or a prefix ending in `/*`
   * (`"/hooks/*"`: `/hooks/` and every path below it). Compared with the path as sent, before `?`, undecoded.
   */
  readonly exemptPaths?: ReadonlyArray<string> | undefined
}

/**
 * Validated {@link Options}, as {@link check} reads them; made by {@link validate}.
 *
 * @since 0.3.0
 * @category models
 */
export interface Settings {
  readonly trustedOrigins: ReadonlySet<string>
  readonly exemptPaths: ReadonlySet<string>
  readonly exemptPrefixes: ReadonlyArray<string>
}

const parseUrl = (text: string): URL | undefined => {
  try {
    return new URL(text)
  } catch {
    return undefined
  }
}

const isPathPattern = (pattern: string) => /^\/[^?#*]*$/.test(pattern.endsWith("/*") ? pattern.slice(0, -1) : pattern)

/**
 * Checks the options: a trusted origin must be exactly as a browser would send it, an exempt path must start with
 * `/` and may contain `*` only as a final `/*`.
 *
 * @since 0.3.0
 * @category constructors
 */
export const validate = (options: Options = {}): Result.Result<Settings, InvalidConfig> => {
  const trustedOrigins = options.trustedOrigins ?? []
  const exemptPaths = options.exemptPaths ?? []
  for (const origin of trustedOrigins) {
    const url = parseUrl(origin)
    const canonical = url === undefined || url.host === "" ? undefined : `${url.protocol}//${url.host}`
    if (canonical !== origin) {
      const hint = canonical === undefined ? "" : ` (as a browser sends it: ${JSON.stringify(canonical)})`
      const reason = `${JSON.stringify(origin)} is not an origin, scheme://host[:port]${hint}`
      return Result.fail(new InvalidConfig({ option: "trustedOrigins", reason }))
    }
  }
  const badPath = exemptPaths.find((pattern) => !isPathPattern(pattern))
  if (badPath !== undefined) {
    const reason = `${JSON.stringify(badPath)} is neither a path ("/hooks/stripe") nor a path prefix ("/hooks/*")`
    return Result.fail(new InvalidConfig({ option: "exemptPaths", reason }))
  }
  return Result.succeed({
    trustedOrigins: new Set(trustedOrigins),
    exemptPaths: new Set(exemptPaths.filter((pattern) => !pattern.endsWith("/*"))),
    exemptPrefixes: exemptPaths.filter((pattern) => pattern.endsWith("/*")).map((pattern) => pattern.slice(0, -1))
  })
}

/**
 * What {@link check} reads of a request: an `HttpServerRequest` is one. Header names are lowercase; `url` is the
 * path and query as sent.
 *
 * @since 0.3.0
 * @category models
 */
export interface Request {
  readonly method: string
  readonly url: string
  readonly headers: Readonly<Record<string, string | undefined>>
}

const safeMethods: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"])

/**
 * Whether a method cannot change state (`GET`, `HEAD`, `OPTIONS`, compared as sent): such requests are never
 * checked, by the guard or by session tokens.
 *
 * @since 0.3.0
 * @category checks
 */
export const isSafeMethod = (method: string): boolean => safeMethods.has(method)

const pathOf = (url: string) => url.split(/[?#]/, 1)[0]!

const isExempt = (request: Request, settings: Settings) => {
  const origin = request.headers["origin"]
  if (origin !== undefined && settings.trustedOrigins.has(origin)) return true
  const path = pathOf(request.url)
  return settings.exemptPaths.has(path) || settings.exemptPrefixes.some((prefix) => path.startsWith(prefix))
}

/** Whether an `Origin` header names the `Host` header's host and port. */
const namesHost = (origin: string, host: string | undefined) =>
  host !== undefined && host !== "" && parseUrl(origin)?.host === host.toLowerCase()

/**
 * Go's `CrossOriginProtection.Check`: why the request must be refused, or `undefined` if it may pass. Methods are
 * compared as sent: only `GET`, `HEAD` and `OPTIONS` are safe.
 *
 * @example
 * ```ts
 * import { CsrfProtection } from "effect-session"
 * import { Result } from "effect"
 *
 * const settings = Result.getOrThrow(CsrfProtection.validate({ trustedOrigins: ["https://admin.example.com"] }))
 * CsrfProtection.check({ method: "POST", url: "/transfer", headers: { "sec-fetch-site": "cross-site" } }, settings)
 * // "Sec-Fetch-Site"
 * ```
 *
 * @since 0.3.0
 * @category checks
 */
export const check = (request: Request, settings: Settings): Reason | undefined => {
  if (safeMethods.has(request.method)) return undefined
  const site = request.headers["sec-fetch-site"]
  if (site === "same-origin" || site === "none") return undefined
  if (site !== undefined && site !== "") return isExempt(request, settings) ? undefined : "Sec-Fetch-Site"
  const origin = request.headers["origin"]
  if (origin === undefined || origin === "" || namesHost(origin, request.headers["host"])) return undefined
  return isExempt(request, settings) ? undefined : "Origin"
}

/** The current request, checked: a refusal is counted and logged (at debug level) before it fails. */
const guard = (settings: Settings): Effect.Effect<void, CrossOriginForbidden, HttpServerRequest.HttpServerRequest> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const reason = check(request, settings)
    if (reason === undefined) return Effect.void
    const { method, url } = request
    return Observability.count(Observability.csrfRefused, 1, ["reason", reason]).pipe(
      Effect.andThen(Effect.logDebug("cross-origin request refused")),
      Effect.annotateLogs({ service: "effect-session/CsrfProtection", reason, method, path: pathOf(url) }),
      Effect.andThen(Effect.fail(new CrossOriginForbidden({ reason })))
    )
  })

/** An app behind the guard: a refused request is answered 403 and never reaches it. */
const guarded = <E, R>(settings: Settings, app: App<E, R>): App<E, R> =>
  Effect.matchEffect(guard(settings), {
    onFailure: (refusal) => refusal[HttpServerRespondable.symbol](),
    onSuccess: () => app
  })

/**
 * The guard as an app middleware: wrap the session middleware in it, so a refused request never reaches the
 * session. Bad options throw `InvalidConfig` here, as the app is assembled. With routes as layers, see
 * {@link routerMiddleware}.
 *
 * @example
 * ```ts
 * import { HttpServer } from "effect/http"
 * import { CsrfProtection } from "effect-session"
 *
 * HttpServer.serve(CsrfProtection.middleware()(AppSession.middleware(app)))
 * ```
 *
 * @since 0.3.0
 * @category middleware
 */
export const middleware = (options?: Options): <E, R>(app: App<E, R>) => App<E, R> => {
  const settings = Result.getOrThrowWith(validate(options), identity)
  return (app) => guarded(settings, app)
}

/**
 * The guard as an `HttpApiMiddleware`, implemented by {@link apiLayer}. It declares {@link CrossOriginForbidden}
 * (403) on the endpoints it guards, so OpenAPI lists it.
 *
 * Add it to the whole API: an API's middleware runs before its groups', so before the session is loaded. On a
 * group, declare it after the session's: of a group's middleware, the one declared last runs first.
 *
 * @example
 * ```ts
 * import { HttpApi } from "effect/http-api"
 * import { CsrfProtection } from "effect-session"
 *
 * class MyApi extends HttpApi.make("app").add(Account.middleware(AppSession.Api)).middleware(CsrfProtection.Api) {}
 * // or on the group: Account.middleware(AppSession.Api).middleware(CsrfProtection.Api)
 * ```
 *
 * @since 0.3.0
 * @category HttpApi
 */
export class Api extends HttpApiMiddleware.Service<Api>()("effect-session/CsrfProtection/Api", {
  error: CrossOriginForbidden
}) {}

/**
 * The implementation of {@link Api}; bad options fail it with `InvalidConfig`.
 *
 * @example
 * ```ts
 * import { HttpApiBuilder } from "effect/http-api"
 * import { Layer } from "effect"
 * import { CsrfProtection } from "effect-session"
 *
 * const ApiLive = HttpApiBuilder.layer(MyApi).pipe(
 *   Layer.provide(AccountLive),
 *   Layer.provide([AppSession.apiLayer, CsrfProtection.apiLayer({ trustedOrigins: ["https://admin.example.com"] })])
 * )
 * ```
 *
 * @since 0.3.0
 * @category HttpApi
 */
export const apiLayer = (options?: Options): Layer.Layer<Api, InvalidConfig> =>
  Layer.effect(
    Api,
    // The HttpApi encodes the error itself: the response is marked uncacheable here.
    Effect.map(Effect.fromResult(validate(options)), (settings) => (httpEffect) =>
      Effect.andThen(Effect.tapError(guard(settings), () => uncacheable), httpEffect))
  )

const uncacheable = HttpEffect.appendPreResponseHandler((_, response) =>
  Effect.succeed(HttpServerResponse.setHeaders(response, noStore))
)

/**
 * The guard as an `HttpRouter` middleware; bad options fail its layer with `InvalidConfig`. On routes that
 * also have the session's router middleware, combine the two so that the guard runs first: `a.combine(b)` runs `b`
 * outside `a`. For every route instead: `HttpRouter.middleware(CsrfProtection.middleware(), { global: true })`.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { CsrfProtection } from "effect-session"
 *
 * const Guarded = Routes.pipe(
 *   Layer.provide(AppSession.routerMiddleware.combine(CsrfProtection.routerMiddleware()).layer)
 * )
 * ```
 *
 * @since 0.3.0
 * @category HttpRouter
 */
export const routerMiddleware = (options?: Options): HttpRouter.Middleware<{
  provides: never
  handles: never
  error: never
  requires: never
  layerError: InvalidConfig
  layerRequires: never
}> => HttpRouter.middleware(Effect.map(Effect.fromResult(validate(options)), (settings) => (app) => guarded(settings, app)))
