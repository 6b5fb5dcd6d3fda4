/**
 * Load for fault tests: `clients` loops, each with its own session, sending requests until told to stop. Every
 * request has a client-side limit, so a request the server never answers is recorded (status 0), never waited for.
 */
import { request } from "node:http"

export interface Sample {
  readonly client: number
  /** When the request started, ms since the load started. */
  readonly at: number
  readonly ms: number
  /** 0: no answer within the client's limit. */
  readonly status: number
}

export interface Reply {
  readonly status: number
  readonly body: string
  readonly setCookie: ReadonlyArray<string>
}

/** One request; resolves with status 0 if no answer came within `timeoutMs`, or the connection failed. */
export const send = (url: string, options: { readonly cookie?: string; readonly method?: string; readonly timeoutMs: number }) =>
  new Promise<Reply>((resolve) => {
    const req = request(url, {
      method: options.method ?? "GET",
      headers: options.cookie === undefined ? {} : { cookie: options.cookie },
      agent: false
    }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk) => (body += chunk))
      res.on("end", () => {
        clearTimeout(timer)
        resolve({ status: res.statusCode ?? 0, body, setCookie: res.headers["set-cookie"] ?? [] })
      })
      res.on("error", () => resolve({ status: 0, body, setCookie: [] }))
    })
    const timer = setTimeout(() => {
      req.destroy()
      resolve({ status: 0, body: "", setCookie: [] })
    }, options.timeoutMs)
    req.on("error", () => {
      clearTimeout(timer)
      resolve({ status: -1, body: "", setCookie: [] })
    })
    req.end()
  })

/** The session cookie from a reply, as a `Cookie` header value. */
export const cookieOf = (reply: Reply): string | undefined => {
  const line = reply.setCookie.find((l) => l.startsWith("__Host-session=") && !l.startsWith("session=;"))
  return line?.split(";")[0]
}

export interface LoadResult {
  readonly samples: ReadonlyArray<Sample>
  /** The cookie of each client's session (undefined if it never got one). */
  readonly cookies: ReadonlyArray<string | undefined>
  /** Per client, how many increments were answered 200. */
  readonly acknowledged: ReadonlyArray<number>
}

/**
 * Runs `clients` loops of `GET base + path` until `stop()` says so (checked between requests) or `maxMillis`
 * passes. Each loop first obtains a session (the first 200 sets its cookie), then keeps sending with it.
 */
export const run = async (options: {
  readonly base: string
  readonly path: string
  readonly clients: number
  readonly timeoutMs: number
  readonly maxMillis: number
  readonly stop: (elapsed: number, samples: ReadonlyArray<Sample>) => boolean
}): Promise<LoadResult> => {
  const started = Date.now()
  const samples: Array<Sample> = []
  const cookies: Array<string | undefined> = Array(options.clients).fill(undefined)
  const acknowledged: Array<number> = Array(options.clients).fill(0)
  const loop = async (client: number) => {
    while (Date.now() - started < options.maxMillis && !options.stop(Date.now() - started, samples)) {
      const at = Date.now() - started
      const cookie = cookies[client]
      const reply = await send(options.base + options.path, { ...(cookie ? { cookie } : {}), timeoutMs: options.timeoutMs })
      samples.push({ client, at, ms: Date.now() - started - at, status: reply.status })
      if (reply.status === 200) {
        acknowledged[client]!++
        cookies[client] ??= cookieOf(reply)
      }
      if (reply.status !== 200) await new Promise((r) => setTimeout(r, 20))
    }
  }
  await Promise.all(Array.from({ length: options.clients }, (_, client) => loop(client)))
  return { samples, cookies, acknowledged }
}

/** Counts of each status. */
export const statusCounts = (samples: ReadonlyArray<Sample>) =>
  samples.reduce<Record<string, number>>((counts, s) => ({ ...counts, [s.status]: (counts[s.status] ?? 0) + 1 }), {})
