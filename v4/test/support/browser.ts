import { Cookies, HttpClient, HttpClientRequest } from "effect/http"
import { Duration, Effect } from "effect"

/** What a test needs of a response. */
export interface Reply {
  readonly status: number
  readonly body: string
  readonly headers: Readonly<Record<string, string>>
  /** The Set-Cookie lines of the response. */
  readonly setCookie: ReadonlyArray<string>
}

/**
 * A minimal browser over the test server's HttpClient: it keeps a cookie jar (honouring Max-Age=0) and sends it.
 */
/** More of a request: headers (`Origin`, `Sec-Fetch-Site`, ...) and a urlencoded form body. */
export interface RequestInit {
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly form?: Readonly<Record<string, string>> | undefined
}

export const makeBrowser = Effect.gen(function*() {
  const client = yield* HttpClient.HttpClient
  const jar = new Map<string, string>()
  const send = (method: "GET" | "POST", path: string, cookieHeader?: string, init: RequestInit = {}) =>
    Effect.gen(function*() {
      const cookie = cookieHeader ?? [...jar].map(([name, value]) => `${name}=${value}`).join("; ")
      const request = HttpClientRequest.make(method)(path).pipe(
        cookie === "" ? (r) => r : HttpClientRequest.setHeader("cookie", cookie),
        HttpClientRequest.setHeaders(init.headers ?? {}),
        init.form === undefined ? (r) => r : HttpClientRequest.bodyUrlParams(init.form)
      )
      const response = yield* client.execute(request)
      const raw = response.headers["set-cookie"] as unknown
      const setCookie: Array<string> = raw === undefined ? [] : Array.isArray(raw) ? raw : [String(raw)]
      for (const cookie of Object.values(Cookies.fromSetCookie(setCookie).cookies)) {
        const maxAge = cookie.options?.maxAge
        if (cookie.value === "" || (maxAge !== undefined && Duration.toMillis(maxAge) <= 0)) jar.delete(cookie.name)
        else jar.set(cookie.name, cookie.value)
      }
      return {
        status: response.status,
        body: yield* response.text,
        headers: response.headers as Record<string, string>,
        setCookie
      } satisfies Reply
    }).pipe(Effect.scoped)
  return {
    get: (path: string, cookieHeader?: string, init?: RequestInit) => send("GET", path, cookieHeader, init),
    post: (path: string, cookieHeader?: string, init?: RequestInit) => send("POST", path, cookieHeader, init),
    jar
  }
})
