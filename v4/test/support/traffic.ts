/**
 * Session traffic of many kinds, for failover tests, against the test app (testApp.ts) over HTTP:
 *
 * - writers: each keeps one session, increments its counter (`GET /`), reads it (`GET /peek`) and logs in now and
 *   then (`POST /login`: a rotation, the counter carried over). Every counter value a writer was answered 2xx is
 *   acknowledged: a later 2xx that shows less (or the final read, see `observe`) means those increments were lost.
 * - revokers: each opens two sessions for a new subject (`POST /login-as`), lists them (`GET /sessions`) and revokes
 *   the first from the second (`POST /logout-everywhere?keep`). Every session whose revocation was answered 2xx must
 *   stay gone.
 *
 * Each client sends one request at a time, each with a client-side limit (status 0: no answer in time), until
 * `stop()` or `maxMillis`. Nothing here decides what passes: the test does, from what is recorded.
 */
import * as Load from "./load.js"

/** What a request did: see the module's comment. */
export type Kind = "increment" | "read" | "login" | "open" | "list" | "revoke"

/** One request, with what it did. */
export interface Sample extends Load.Sample {
  readonly kind: Kind
}

/** An acknowledged counter value, and when its answer came (ms since the traffic started). */
export interface Ack {
  readonly visits: number
  readonly at: number
}

/** A writer's session: what it was acknowledged, and what of that a later answer showed lost. */
export interface Writer {
  cookie: string | undefined
  /** Acknowledged counter values still standing, increasing. */
  readonly acked: Array<Ack>
  /** Acknowledged counter values that a later 2xx showed missing. */
  readonly lost: Array<Ack>
  /** When the login that gave the current key was acknowledged. */
  loginAt: number | undefined
  /**
   * Keys a later answer did not know (the session came back new): when the login that made each (or the session's
   * first write) was acknowledged. The user was logged out, and lost the counter with it.
   */
  readonly lostKeys: Array<number>
  /** Acknowledged counter values lost with their key. */
  lostWithKey: number
  /** Chains given up after a 409: a login whose answer was lost may have rotated the key (outcome unknown). */
  abandoned: number
}

/**
 * Takes note of what a 2xx showed: the stored counter `stored` (before the request's own increment, if any), and
 * whether the key was unknown (a new session). Every acknowledged value above it was lost; an unknown key means the
 * login (or first write) that made it was lost, and the whole session with it.
 */
export const observe = (writer: Writer, stored: number, isNew: boolean) => {
  if (isNew && writer.acked.length > 0) {
    writer.lostKeys.push(writer.loginAt ?? writer.acked[0]!.at)
    writer.lostWithKey += writer.acked.length
    writer.acked.length = 0
  }
  if (isNew) writer.loginAt = undefined
  while ((writer.acked.at(-1)?.visits ?? 0) > stored) writer.lost.push(writer.acked.pop()!)
}

/** Every request, and what the clients were acknowledged. */
export interface Result {
  readonly samples: ReadonlyArray<Sample>
  readonly writers: ReadonlyArray<Writer>
  /** Cookies of sessions whose revocation was answered 2xx. */
  readonly revoked: ReadonlyArray<string>
}

interface Body {
  readonly data?: { readonly visits?: number }
  readonly isNew?: boolean
}

const parse = (body: string): Body => {
  try {
    return JSON.parse(body) as Body
  } catch {
    return {}
  }
}

/**
 * What the session of `cookie` holds now (`GET /peek`): its counter, and whether it is gone (a new session); the
 * status and a counter of -1 when the answer is not 2xx.
 */
export const peek = (base: string, cookie: string) =>
  Load.send(`${base}/peek`, { cookie, timeoutMs: 10_000 }).then((reply) => {
    if (reply.status !== 200) return { status: reply.status, visits: -1, isNew: false }
    const body = JSON.parse(reply.body) as { data: { visits: number }; isNew: boolean }
    return { status: 200, visits: body.data.visits, isNew: body.isNew }
  })

/** Runs the traffic; see the module's comment. */
export const run = async (options: {
  readonly base: string
  readonly writers: number
  readonly revokers: number
  readonly timeoutMs: number
  readonly maxMillis: number
  readonly stop: () => boolean
}): Promise<Result> => {
  const started = Date.now()
  const samples: Array<Sample> = []
  const writers: Array<Writer> = Array.from(
    { length: options.writers },
    () => ({ cookie: undefined, acked: [], lost: [], loginAt: undefined, lostKeys: [], lostWithKey: 0, abandoned: 0 })
  )
  const revoked: Array<string> = []
  const going = () => Date.now() - started < options.maxMillis && !options.stop()

  const send = async (client: number, kind: Kind, path: string, method: string, cookie: string | undefined) => {
    const at = Date.now() - started
    const reply = await Load.send(options.base + path, { ...(cookie ? { cookie } : {}), method, timeoutMs: options.timeoutMs })
    samples.push({ client, kind, at, ms: Date.now() - started - at, status: reply.status })
    if (reply.status !== 200) await new Promise((r) => setTimeout(r, 20))
    return reply
  }

  const writer = async (i: number) => {
    const w = writers[i]!
    for (let step = 0; going(); step++) {
      const op = step % 10
      const [kind, path, method]: [Kind, string, string] = w.cookie === undefined || op < 7 || op === 9
        ? ["increment", "/", "GET"]
        : op === 7
        ? ["read", "/peek", "GET"]
        : ["login", `/login?name=w${i}`, "POST"]
      const reply = await send(i, kind, path, method, w.cookie)
      if (reply.status === 409) {
        // The key was rotated by a login whose answer never came: start a new chain, this one can't be checked.
        w.abandoned++
        w.cookie = undefined
        w.acked.length = 0
        w.loginAt = undefined
        continue
      }
      if (reply.status !== 200) continue
      const body = parse(reply.body)
      const visits = body.data?.visits
      if (typeof visits !== "number") continue
      observe(w, kind === "increment" ? visits - 1 : visits, body.isNew === true && w.cookie !== undefined)
      if (kind === "increment") w.acked.push({ visits, at: Date.now() - started })
      if (kind === "login") w.loginAt = Date.now() - started
      w.cookie = Load.cookieOf(reply) ?? w.cookie
    }
  }

  // Each round a subject of its own, so that no later revocation repairs one that was lost.
  const revoker = async (i: number) => {
    const client = options.writers + i
    const open = async (subject: string) => {
      const reply = await send(client, "open", `/login-as?name=${subject}`, "POST", undefined)
      return reply.status === 200 ? Load.cookieOf(reply) : undefined
    }
    for (let round = 0; going(); round++) {
      const subject = `r${i}-${round}`
      const first = await open(subject)
      const second = first === undefined ? undefined : await open(subject)
      if (first === undefined || second === undefined) continue
      await send(client, "list", "/sessions", "GET", second)
      const revocation = await send(client, "revoke", "/logout-everywhere?keep=1", "POST", second)
      if (revocation.status === 200) revoked.push(first)
    }
  }

  await Promise.all([
    ...Array.from({ length: options.writers }, (_, i) => writer(i)),
    ...Array.from({ length: options.revokers }, (_, i) => revoker(i))
  ])
  return { samples, writers, revoked }
}
