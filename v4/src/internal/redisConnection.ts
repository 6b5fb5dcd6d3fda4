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
  /** Commands made in the same tick leave in one write (standalone and Sentinel only). */
  readonly pipelining: boolean
}

/** Runs the store's scripts. */
export interface Connection {
  readonly cluster: boolean
  /**
   * Runs `script` on `keys` (one slot) with `args` after its nonce; a write waits for the replicas asked for. It
   * fails with a `timeout` once `deadline` (`performance.now()` time; by default the store's timeout from when the
   * call starts) has passed, whatever the clock of the fiber.
   */
  readonly run: <A = Array<unknown>>(
    script: Script,
    keys: ReadonlyArray<string>,
    args: ReadonlyArray<string>,
    write: boolean,
    deadline: number | undefined,
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
  // Off by default: ioredis's pipeline per tick costs the app more CPU than the writes it saves (docs/benchmarks.md).
  enableAutoPipelining: settings.pipelining,
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

/**
 * The commands waiting for a reply, in order of sending, with their deadlines on one real-time timer instead of one
 * per command: armed for the earliest, it expires every command whose deadline has passed and arms itself again for
 * the next. A list linked through the commands themselves: adding and removing one allocates nothing.
 */
class Deadlines {
  private first: Call | undefined
  private last: Call | undefined
  private timer: ReturnType<typeof setTimeout> | undefined
  private armedFor = Infinity

  add(call: Call) {
    call.previous = this.last
    if (this.last === undefined) this.first = call
    else this.last.next = call
    this.last = call
    if (call.deadline < this.armedFor) this.arm(call.deadline)
  }

  /** Takes out a command that is in the table. */
  remove(call: Call) {
    if (call.previous === undefined) this.first = call.next
    else call.previous.next = call.next
    if (call.next === undefined) this.last = call.previous
    else call.next.previous = call.previous
    call.previous = call.next = undefined
  }

  private arm(at: number) {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.armedFor = at
    // Unreferenced: a command waiting keeps the process alive through its socket, not through this timer.
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - performance.now()))
    this.timer.unref?.()
  }

  private fire() {
    this.timer = undefined
    this.armedFor = Infinity
    const now = performance.now()
    let next = Infinity
    for (let call = this.first; call !== undefined;) {
      const following = call.next
      if (call.deadline <= now) call.settle(Effect.fail(new RedisFailure({ reason: "timeout" })))
      else if (call.deadline < next) next = call.deadline
      call = following
    }
    if (next !== Infinity) this.arm(next)
  }
}

/** What every call of one connection shares. */
interface Line {
  readonly client: Redis | Cluster
  readonly pending: Deadlines
  /** A failure as the caller sees it (on a Cluster, a connection failure also refreshes the slots). */
  readonly failed: (error: unknown) => RedisFailure
}

/** A reply decoded; one the decoder cannot read is a defect of the caller's (not a timeout, nor an unhandled rejection). */
const decoded = (decode: (reply: Array<unknown>) => unknown, reply: Array<unknown>): Effect.Effect<unknown> => {
  try {
    return Effect.succeed(decode(reply))
  } catch (defect) {
    return Effect.die(defect)
  }
}

/**
 * One script call waiting for its reply: settled once, by its reply, its failure or its deadline. Every reply is
 * checked, even one that comes after the caller stopped waiting: a stream that lost its alignment is closed before it
 * can hand anyone a reply that is not theirs.
 */
class Call {
  previous: Call | undefined = undefined
  next: Call | undefined = undefined
  private settled = false

  constructor(
    private readonly line: Line,
    readonly deadline: number,
    private readonly nonce: string,
    /** The first key: where a reply out of line came from. */
    private readonly key: string,
    private readonly resume: (outcome: Effect.Effect<unknown, RedisFailure>) => void,
    private readonly decode: ((reply: Array<unknown>) => unknown) | undefined
  ) {
    line.pending.add(this)
  }

  settle(outcome: Effect.Effect<unknown, RedisFailure>) {
    if (this.settled) return
    this.settled = true
    this.line.pending.remove(this)
    this.resume(outcome)
  }

  reply(value: unknown) {
    if (!Array.isArray(value) || value[0] !== this.nonce) {
      resetFor(this.line.client, this.key)
      return this.fail(new RedisFailure({ reason: "desync" }))
    }
    if (this.settled) return
    this.settle(this.decode === undefined ? Effect.succeed(value) : decoded(this.decode, value))
  }

  fail(error: unknown) {
    if (!this.settled) this.settle(Effect.fail(this.line.failed(error)))
  }
}

/** The store's connection on a client already made (`connect` makes one; the benchmark measures with another). */
export const makeConnection = (client: Redis | Cluster, settings: Settings): Connection => {
  // Real-time deadlines and no fiber: a `TestClock` never stops a deadline from acting.
  const line: Line = {
    client,
    pending: new Deadlines(),
    // A connection failure on a Cluster: the slots may have moved (a failover), so they are asked for again.
    failed: (error) => {
      const named = failure(error)
      if (isCluster(client) && named.reason !== "reply") client.refreshSlotsCache()
      return named
    }
  }
  const run = ((script, keys, args, write, before, decode) =>
    Effect.callback<unknown, RedisFailure>((resume) => {
      const deadline = before ?? performance.now() + settings.timeout
      const nonce = String(++nonces)
      const call = new Call(line, deadline, nonce, keys[0] ?? "", resume, decode)
      const rest = [...keys, nonce, ...args]
      // WAIT gives up a little before the deadline, so a missing replica is reported as such.
      const waits = write && settings.replicas > 0 ? Math.max(1, Math.floor(deadline - performance.now() - 50)) : undefined
      send(client, settings.replicas, script, keys.length, rest, waits, false).then(
        (value) => call.reply(value),
        (error) =>
          noScript(error)
            ? send(client, settings.replicas, script, keys.length, rest, waits, true).then(
              (value) => call.reply(value),
              (error) => call.fail(error)
            )
            : call.fail(error)
      )
      // No canceler (it would wrap every call in an interruption handler, several steps of the fiber's each time): an
      // interrupted caller is gone, and the call stays in `pending` until its reply or its deadline settles it.
    })) as Connection["run"]

  return { cluster: isCluster(client), run, client }
}
