/**
 * The Redis connection of `RedisSessionStore`, on ioredis (an optional peer, loaded here only, by a dynamic import):
 * a standalone server, a Cluster or a Sentinel-managed master, and one way to run the store's scripts on it.
 *
 * Bounded everywhere: no offline queue (a command sent while the connection is down fails at once), a socket that
 * receives nothing for the deadline while commands wait is destroyed (its commands fail, a new connection follows),
 * commands are never resent after a reconnection (a write that may have run is never run twice), and every reply
 * must echo its command's nonce, so a reply can never be taken for another command's.
 */
import { Data, Effect, type Scope } from "effect"
import type { Cluster, ClusterOptions, Redis, RedisOptions } from "ioredis"
import type { Script } from "./redisScripts.js"

/** Why a Redis call failed: a class and a code, never a command's arguments (they hold keys and values). */
export class RedisFailure extends Data.TaggedError("RedisFailure")<{
  readonly reason: "connection" | "reply" | "desync" | "replicas" | "timeout"
  /** A code (`ECONNREFUSED`, `NOSCRIPT`, `TIMEOUT`, …): the reason's own when nothing better is known. */
  readonly code: string
}> {
  constructor(fields: { readonly reason: RedisFailure["reason"]; readonly code?: string | undefined }) {
    super({ reason: fields.reason, code: fields.code ?? fields.reason.toUpperCase() })
  }
  override get message() {
    return `Redis ${this.reason} failure (${this.code})`
  }
}

/** Where the store connects. */
export type Target =
  | { readonly _tag: "Url"; readonly url: string }
  | { readonly _tag: "Server"; readonly host: string; readonly port: number }
  | { readonly _tag: "Cluster"; readonly nodes: ReadonlyArray<{ readonly host: string; readonly port: number }> }
  | {
    readonly _tag: "Sentinel"
    readonly sentinels: ReadonlyArray<{ readonly host: string; readonly port: number }>
    readonly name: string
  }

export interface Settings {
  readonly target: Target
  readonly username: string | undefined
  readonly password: string | undefined
  readonly db: number | undefined
  readonly tls: boolean
  /** Opening a connection, and the start-up wait for it. */
  readonly connectTimeout: number
  /** The store's deadline: a socket silent this long while commands wait is destroyed. */
  readonly timeout: number
  /** Replicas every write waits for (`WAIT`); 0 waits for none. */
  readonly replicas: number
}

/** Runs the store's scripts. */
export interface Connection {
  readonly cluster: boolean
  /**
   * Runs `script` on `keys` (one slot) with `args` after its nonce; a write waits for the replicas asked for. It
   * fails with a `timeout` once `deadline` (`performance.now()` time) has passed, whatever the clock of the fiber.
   */
  readonly run: <A = Array<unknown>>(
    script: Script,
    keys: ReadonlyArray<string>,
    args: ReadonlyArray<string>,
    write: boolean,
    deadline: number,
    decode?: (reply: Array<unknown>) => A
  ) => Effect.Effect<A, RedisFailure>
  /** The client, for tests and the benchmark's raw competitor. */
  readonly client: Redis | Cluster
}

const fixedMessages: ReadonlyArray<readonly [string, string]> = [
  ["Socket timeout", "SOCKET_TIMEOUT"],
  ["Stream isn't writeable", "OFFLINE"],
  ["Connection is closed", "CLOSED"],
  ["Cluster isn't ready", "CLUSTER_NOT_READY"],
  ["Reached the max retries", "CLOSED"],
  ["Too many Cluster redirections", "REDIRECTIONS"],
  ["Failed to refresh slots cache", "SLOTS"],
  ["None of the sentinels are available", "NO_SENTINEL"]
]

/** A failure named by its class and code only. */
export const failure = (error: unknown): RedisFailure => {
  if (error instanceof RedisFailure) return error
  const { code, message, name } = (error ?? {}) as { name?: unknown; message?: unknown; code?: unknown }
  const text = typeof message === "string" ? message : ""
  if (name === "ReplyError") {
    const word = /^[A-Z]+(?=\s|$)/.exec(text)?.[0]
    return new RedisFailure({ reason: "reply", code: word })
  }
  const known = fixedMessages.find(([start]) => text.startsWith(start))?.[1]
  return new RedisFailure({ reason: "connection", code: typeof code === "string" ? code : known })
}

/** CRC16 (XMODEM) of a key's hash tag: its Redis Cluster slot. */
export const slotOf = (key: string): number => {
  const open = key.indexOf("{")
  const close = open < 0 ? -1 : key.indexOf("}", open + 1)
  const tag = close > open + 1 ? key.slice(open + 1, close) : key
  let crc = 0
  for (const byte of Buffer.from(tag)) {
    crc ^= byte << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc % 16384
}

/** The client classes of ioredis. */
interface Classes {
  readonly Redis: typeof Redis
  readonly Cluster: typeof Cluster
}

const load = Effect.tryPromise({
  try: async (): Promise<Classes> => {
    const io = (await import("ioredis")) as unknown as Partial<Classes> & { readonly default?: Partial<Classes> }
    const Client = io.Redis ?? io.default?.Redis
    const ClusterClient = io.Cluster ?? io.default?.Cluster
    if (Client === undefined || ClusterClient === undefined) throw new Error("ioredis has no Redis or Cluster class")
    return { Redis: Client, Cluster: ClusterClient }
  },
  catch: () => new RedisFailure({ reason: "connection", code: "IOREDIS_NOT_INSTALLED" })
})

/** Options of every connection: no queue, no resend, no handshake that could hang, a silent socket destroyed. */
const connectionOptions = (settings: Settings): RedisOptions => ({
  connectTimeout: settings.connectTimeout,
  socketTimeout: settings.timeout,
  enableOfflineQueue: false,
  enableReadyCheck: false,
  disableClientInfo: true,
  autoResendUnfulfilledCommands: false,
  maxRetriesPerRequest: 0,
  keepAlive: 10_000,
  noDelay: true,
  // Commands sent in the same tick leave in one write: concurrent requests share a round trip.
  enableAutoPipelining: true,
  retryStrategy: (attempt: number) => Math.min(50 * attempt, 1_000),
  ...(settings.username === undefined ? {} : { username: settings.username }),
  ...(settings.password === undefined ? {} : { password: settings.password }),
  ...(settings.db === undefined ? {} : { db: settings.db }),
  ...(settings.tls ? { tls: {} } : {})
})

const clusterOptions = (settings: Settings): ClusterOptions => {
  const { db: _db, enableAutoPipelining: _pipelining, enableOfflineQueue: _queue, retryStrategy: _retry, ...node } =
    connectionOptions(settings)
  return {
    lazyConnect: true,
    // ioredis routes an auto-pipelined EVALSHA by its first argument (the script's SHA), not its key: off on a Cluster.
    enableAutoPipelining: false,
    enableOfflineQueue: false,
    // A command whose connection closed may have run: never retried (a retried write could run twice).
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: Math.min(1_000, settings.timeout),
    slotsRefreshInterval: 5_000,
    clusterRetryStrategy: (attempt: number) => Math.min(100 * attempt, 2_000),
    redisOptions: node
  }
}

const build = ({ Cluster: ClusterClient, Redis: Client }: Classes, settings: Settings) => {
  const options: RedisOptions = { ...connectionOptions(settings), lazyConnect: true }
  const { target } = settings
  switch (target._tag) {
    case "Url":
      return new Client(target.url, options)
    case "Server":
      return new Client({ ...options, host: target.host, port: target.port })
    case "Sentinel":
      return new Client({ ...options, sentinels: target.sentinels.map((s) => ({ ...s })), name: target.name })
    case "Cluster":
      return new ClusterClient(target.nodes.map((n) => ({ ...n })), clusterOptions(settings))
  }
}

/** Connects within `connectTimeout` (the layer fails otherwise); the connection closes with the scope. */
export const connect = (settings: Settings): Effect.Effect<Connection, RedisFailure, Scope.Scope> =>
  Effect.gen(function*() {
    const io = yield* load
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => build(io, settings)),
      (client) => Effect.sync(() => client.disconnect())
    )
    // Errors are reported through the commands that fail; the event only keeps Node from throwing.
    client.on("error", () => {})
    // A real-time timer: the start-up wait holds whatever the clock of the fiber.
    yield* Effect.tryPromise({
      try: () =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new RedisFailure({ reason: "timeout", code: "CONNECT" })), settings.connectTimeout)
          client.connect().then(resolve, reject).finally(() => clearTimeout(timer))
        }),
      catch: failure
    })
    return makeConnection(client, settings)
  })

let nonces = 0

const isCluster = (client: Redis | Cluster): client is Cluster => (client as Cluster).isCluster === true

/** Closes the connection a reply came on when its stream lost its alignment; a new one follows. */
const resetFor = (client: Redis | Cluster, key: string) => {
  if (!isCluster(client)) return void client.disconnect(true)
  const nodeKey = client.slots[slotOf(key)]?.[0]
  client.nodes("master").find((n) => `${n.options.host}:${n.options.port}` === nodeKey)?.disconnect()
  client.refreshSlotsCache()
}

const noScript = (error: unknown) => (error as { message?: unknown })?.message?.toString().startsWith("NOSCRIPT") === true

/**
 * One script call (by SHA, or by its source after a `NOSCRIPT`) on `count` keys, `rest` holding the keys and then
 * the arguments; with `waits`, `WAIT` for the replicas in the same pipeline (so on the same node) within that many
 * ms, and a failure when fewer confirmed.
 */
const send = (
  client: Redis | Cluster,
  replicas: number,
  script: Script,
  count: number,
  rest: ReadonlyArray<string>,
  waits: number | undefined,
  source: boolean
): Promise<unknown> => {
  if (waits === undefined) return source ? client.eval(script.source, count, ...rest) : client.evalsha(script.sha, count, ...rest)
  const pipeline = client.pipeline()
  if (source) pipeline.eval(script.source, count, ...rest)
  else pipeline.evalsha(script.sha, count, ...rest)
  pipeline.wait(replicas, waits)
  return pipeline.exec().then((results) => {
    const [[error, reply] = [null, undefined], [waitError, acked] = [null, 0]] = results ?? []
    if (error) throw error
    if (waitError) throw waitError
    if (typeof acked !== "number" || acked < replicas) throw new RedisFailure({ reason: "replicas", code: `WAIT ${acked}` })
    return reply
  })
}

/** A command waiting for its reply: when it must have one (`performance.now()` time), and how it fails then. */
interface Waiting {
  readonly deadline: number
  readonly expire: () => void
}

/**
 * The deadlines of the commands waiting for a reply, on one real-time timer instead of one per command: armed for
 * the earliest, it fails every command whose deadline has passed and arms itself again for the next.
 */
const deadlines = () => {
  const waiting = new Set<Waiting>()
  let timer: ReturnType<typeof setTimeout> | undefined
  let armedFor = Infinity
  const arm = (at: number) => {
    if (timer !== undefined) clearTimeout(timer)
    armedFor = at
    // Unreferenced: a command waiting keeps the process alive through its socket, not through this timer.
    timer = setTimeout(fire, Math.max(0, at - performance.now()))
    timer.unref?.()
  }
  const fire = () => {
    timer = undefined
    armedFor = Infinity
    const now = performance.now()
    let next = Infinity
    for (const command of waiting) {
      if (command.deadline <= now) {
        waiting.delete(command)
        command.expire()
      } else if (command.deadline < next) {
        next = command.deadline
      }
    }
    if (next !== Infinity) arm(next)
  }
  return {
    add: (command: Waiting) => {
      waiting.add(command)
      if (command.deadline < armedFor) arm(command.deadline)
    },
    remove: (command: Waiting) => void waiting.delete(command)
  }
}

/** The store's connection on a client already made (`connect` makes one; the benchmark measures with another). */
export const makeConnection = (client: Redis | Cluster, settings: Settings): Connection => {
  /** A connection failure on a Cluster: the slots may have moved (a failover), so they are asked for again. */
  const failed = (error: unknown) => {
    const named = failure(error)
    if (isCluster(client) && named.reason !== "reply") client.refreshSlotsCache()
    return named
  }

  // Real-time deadlines and no fiber: a `TestClock` never stops a deadline from acting.
  const pending = deadlines()
  const run = ((script, keys, args, write, deadline, decode) =>
    Effect.async<unknown, RedisFailure>((resume) => {
      let settled = false
      const fail = (error: unknown) => {
        if (settled) return
        settled = true
        pending.remove(waiting)
        resume(Effect.fail(failed(error)))
      }
      const waiting: Waiting = { deadline, expire: () => fail(new RedisFailure({ reason: "timeout" })) }
      pending.add(waiting)
      const nonce = String(++nonces)
      const rest = [...keys, nonce, ...args]
      // WAIT gives up a little before the deadline, so a missing replica is reported as such.
      const waits = write && settings.replicas > 0 ? Math.max(1, Math.floor(deadline - performance.now() - 50)) : undefined
      // Every reply is checked, even one that comes after the caller stopped waiting: a stream that lost its
      // alignment is closed before it can hand anyone a reply that is not theirs.
      const reply = (value: unknown) => {
        if (!Array.isArray(value) || value[0] !== nonce) {
          resetFor(client, keys[0] ?? "")
          return fail(new RedisFailure({ reason: "desync" }))
        }
        if (settled) return
        settled = true
        pending.remove(waiting)
        resume(Effect.succeed(decode === undefined ? value : decode(value)))
      }
      send(client, settings.replicas, script, keys.length, rest, waits, false).then(reply, (error) =>
        noScript(error) ? send(client, settings.replicas, script, keys.length, rest, waits, true).then(reply, fail) : fail(error))
      // No canceler (it would wrap every call in an interruption handler, several steps of the fiber's each time): an
      // interrupted caller is gone, and the call stays in `pending` until its reply or its deadline settles it.
    })) as Connection["run"]

  return { cluster: isCluster(client), run, client }
}
