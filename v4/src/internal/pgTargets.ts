/**
 * Where a new connection goes when the pool knows several servers: libpq's multi-host semantics for pg, which has
 * none. Each new connection (pooled or pipelined) tries the hosts in order, each attempt within `connectTimeout`,
 * checks the server against `target_session_attrs` as libpq does, and moves on to the next host when the server
 * cannot be reached or does not fit. After a failover, new connections therefore reach the new primary.
 *
 * One difference from libpq, to keep a dead host from costing every new connection its connect timeout: a host
 * that failed or did not fit is tried last for the next {@link recheckMillis}; then one connection checks it again
 * while the others still skip it.
 *
 * A connection also learns when it must not be reused: a statement refused because the server is read-only
 * (SQLSTATE 25006: it was demoted, or the app reached a standby) or is shutting down (57P01, 57P02, 57P03). The
 * pool discards such a connection on release instead of handing it to the next request.
 */
import { Effect, Redacted } from "effect"
import Pg from "pg"
import { InvalidConfig } from "../SessionError.js"
import { oneOf } from "./options.js"
import * as PgUrl from "./pgUrl.js"

/** The options that say where connections go (part of the pool's options). */
export interface TargetOptions {
  readonly url?: Redacted.Redacted | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly hosts?: ReadonlyArray<PgUrl.Host> | undefined
  readonly targetSessionAttrs?: PgUrl.TargetSessionAttrs | undefined
  readonly loadBalanceHosts?: PgUrl.LoadBalanceHosts | undefined
}

/** One server a connection may go to: a name for messages (never a password) and what pg needs to reach it. */
export interface Candidate {
  readonly name: string
  readonly config: Pg.ClientConfig
}

/** How long a host that failed or did not fit is tried last. */
export const recheckMillis = 5_000

/** SQLSTATEs after which a connection is never reused: read-only transaction, admin/crash shutdown, cannot connect now. */
const retiring = new Set(["25006", "57P01", "57P02", "57P03"])

/** Connections that saw one of those errors. */
const retired = new WeakSet<object>()

/** Errors of an attempt to reach one host, after which the next host may be tried. */
const attemptFailures = new WeakSet<object>()

/** Whether the pool must discard `client` rather than reuse it. */
export const isRetired = (client: object): boolean => retired.has(client)

/** Whether `error` (or its cause: pg-pool wraps a timed-out attempt) is the failure of one host, worth another. */
export const isAttemptFailure = (error: unknown): boolean =>
  typeof error === "object" && error !== null &&
  (attemptFailures.has(error) || attemptFailures.has((error as { cause?: object }).cause ?? {}))

/** A server that answered but is not what `target_session_attrs` asks for. */
export class SessionAttrsMismatch extends Error {
  override readonly name = "SessionAttrsMismatch"
  constructor(host: string, attrs: PgUrl.TargetSessionAttrs, found: { standby: boolean; readOnly: boolean }) {
    super(`${host} is ${found.standby ? "a standby" : found.readOnly ? "read-only" : "a read-write primary"}, not ${attrs}`)
  }
}

/** libpq's check, in one round trip: whether the server is in recovery, and whether its sessions are read-only. */
const checkStatement = {
  text: "SELECT pg_catalog.pg_is_in_recovery() AS standby, " +
    "pg_catalog.current_setting('transaction_read_only') = 'on' AS read_only",
  // pg's own parsers whatever `types` the app configured.
  types: Pg.types
}

/** The hosts, what a connection must find there, and which hosts failed lately. */
export class Targets {
  readonly #rejectedAt: Array<number | undefined>
  /** The order of those failures (times can tie). */
  readonly #rejectedSeq: Array<number>
  #seq = 0
  /** How many hosts one new connection may try: each once (`prefer-standby`: once more, accepting a primary). */
  readonly attempts: number
  /** The `pg.Client` of the pool and the pipelined connections: it picks a host, connects and checks. */
  readonly Client: typeof Pg.Client

  constructor(
    readonly candidates: ReadonlyArray<Candidate>,
    readonly attrs: PgUrl.TargetSessionAttrs,
    readonly random: boolean,
    readonly connectTimeout: number
  ) {
    this.#rejectedAt = candidates.map(() => undefined)
    this.#rejectedSeq = candidates.map(() => 0)
    this.attempts = candidates.length + (attrs === "prefer-standby" ? 1 : 0)
    this.Client = clientClass(this)
  }

  /**
   * The host for the next connection: the first in order (from a random one with `load_balance_hosts=random`)
   * that has not failed lately; if all have, the one that failed longest ago. A host taken for a re-check counts as
   * failed meanwhile, so concurrent connections don't all wait on it.
   */
  next(): number {
    const n = this.candidates.length
    if (n === 1) return 0
    const now = Date.now()
    const start = this.random ? Math.floor(Math.random() * n) : 0
    let oldest = start
    for (let k = 0; k < n; k++) {
      const i = (start + k) % n
      const at = this.#rejectedAt[i]
      if (at === undefined) return i
      if (now - at >= recheckMillis) {
        this.reject(i)
        return i
      }
      if (this.#rejectedSeq[i]! < this.#rejectedSeq[oldest]!) oldest = i
    }
    this.reject(oldest)
    return oldest
  }

  /** A connection found `i` fitting. */
  accept(i: number): void {
    this.#rejectedAt[i] = undefined
  }

  /** A connection could not use `i` (or is about to re-check it). */
  reject(i: number): void {
    this.#rejectedAt[i] = Date.now()
    this.#rejectedSeq[i] = ++this.#seq
  }

  /** Whether a server in this state fits; `prefer-standby` takes a primary only when every other host failed lately. */
  fits(i: number, found: { readonly standby: boolean; readonly readOnly: boolean }): boolean {
    switch (this.attrs) {
      case "any":
        return true
      case "read-write":
        return !found.readOnly
      case "read-only":
        return found.readOnly
      case "primary":
        return !found.standby
      case "standby":
        return found.standby
      case "prefer-standby": {
        const now = Date.now()
        return found.standby ||
          this.#rejectedAt.every((at, j) => j === i || (at !== undefined && now - at < recheckMillis))
      }
    }
  }
}

/**
 * A `pg.Client` that goes where `targets` says: it picks its host when it is made (pg-pool makes a client, then
 * connects it), connects and checks the server within `connectTimeout`, and marks its failure as one host's, so the
 * caller may try the next. It also marks itself retired when a statement fails because of the server's state.
 */
const clientClass = (targets: Targets): typeof Pg.Client =>
  class TargetClient extends Pg.Client {
    readonly #target: number

    constructor(config?: string | Pg.ClientConfig) {
      const target = targets.next()
      super({ ...(config as Pg.ClientConfig | undefined), ...targets.candidates[target]!.config })
      this.#target = target
      this.connection.on("errorMessage", (message: { readonly code?: string }) => {
        if (message.code !== undefined && retiring.has(message.code)) retired.add(this)
      })
    }

    override connect(): Promise<Pg.Client>
    override connect(callback: (error: Error) => void): void
    override connect(callback?: (...args: Array<any>) => void): Promise<Pg.Client> | void {
      const connected = this.#open()
      if (callback === undefined) return connected
      connected.then(() => callback(null, this), (error: Error) => callback(error))
    }

    async #open(): Promise<Pg.Client> {
      const candidate = targets.candidates[this.#target]!
      // Errors while the attempt runs (the socket dies during the check) must not reach the process.
      const swallow = () => {}
      this.on("error", swallow)
      const timer = targets.connectTimeout > 0
        ? setTimeout(() => this.connection.stream.destroy(new Error(`no answer within ${targets.connectTimeout} ms`)), targets.connectTimeout)
        : undefined
      let connected = false
      try {
        await super.connect()
        connected = true
        if (targets.attrs !== "any") {
          const [row] = (await this.query<{ standby: boolean; read_only: boolean }>(checkStatement)).rows
          const found = { standby: row?.standby === true, readOnly: row?.read_only === true }
          if (!targets.fits(this.#target, found)) throw new SessionAttrsMismatch(candidate.name, targets.attrs, found)
        }
        targets.accept(this.#target)
        this.off("error", swallow)
        return this
      } catch (error) {
        targets.reject(this.#target)
        if (connected) this.end().catch(() => {})
        else this.connection.stream.destroy()
        const failure = error instanceof Error ? error : new Error(String(error))
        attemptFailures.add(failure)
        throw failure
      } finally {
        clearTimeout(timer)
      }
    }
  }

/**
 * Opens one connection as the pipelined reads need it (outside the pool): like the pool, it tries the next host
 * after an attempt that failed there, up to `targets.attempts` times.
 */
export const open = async (targets: Targets, config: Pg.ClientConfig): Promise<Pg.Client> => {
  for (let left = targets.attempts;; left--) {
    const client = new targets.Client(config)
    try {
      return await client.connect()
    } catch (error) {
      if (left <= 1 || !isAttemptFailure(error)) throw error
    }
  }
}

const invalid = (option: string, reason: string) => Effect.fail(new InvalidConfig({ option, reason }))

/** The listed hosts, checked: names that are not empty, ports that are ports. */
const checkedHosts = (hosts: ReadonlyArray<PgUrl.Host>) => {
  if (hosts.length === 0) return invalid("hosts", "must name at least one host")
  for (const { host, port } of hosts) {
    if (typeof host !== "string" || host === "") return invalid("hosts", "a host is empty")
    if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) {
      return invalid("hosts", `port ${String(port)} of ${host} is not a port number`)
    }
  }
  return Effect.succeed(hosts)
}

/** A URL's value of a parameter, or the option's; both given and different is a mistake. */
const agreed = <A extends string>(
  option: string,
  fromUrl: A | undefined,
  fromOption: string | undefined,
  allowed: ReadonlyArray<A>
) =>
  Effect.gen(function*() {
    const value = fromOption === undefined ? undefined : yield* oneOf(option, fromOption, allowed)
    if (value !== undefined && fromUrl !== undefined && value !== fromUrl) {
      return yield* invalid(option, `${value} differs from the URL's ${fromUrl}`)
    }
    return value ?? fromUrl
  })

/**
 * The targets of `options`: the URL's host list or `hosts` (one or the other), else the single host as pg reads it.
 * `targetSessionAttrs` defaults to `read-write` when several hosts are given (a session store writes on nearly
 * every request; libpq's `any` would let it settle on a standby), else to `any` (no check: one host is what it is).
 */
export const make = (options: TargetOptions, connectTimeout: number): Effect.Effect<Targets, InvalidConfig> =>
  Effect.gen(function*() {
    if (options.url !== undefined && !Redacted.isRedacted(options.url)) {
      return yield* invalid("url", "must be Redacted (Redacted.make(url), or Config.redacted(...) in layerPoolConfig)")
    }
    const parsed = options.url === undefined ? undefined : PgUrl.parse(Redacted.value(options.url))
    if (parsed?._tag === "Failure") return yield* invalid("url", parsed.failure)
    const url = parsed?.success
    if (options.hosts !== undefined && options.host !== undefined) {
      return yield* invalid("hosts", "give either host (and port) or hosts, not both")
    }
    if (options.hosts !== undefined && url?.hosts !== undefined) {
      return yield* invalid("hosts", "the URL already lists its hosts: give them in one place")
    }
    if (options.hosts !== undefined && url !== undefined && url.withHost === undefined) {
      return yield* invalid("hosts", "hosts needs a postgres:// URL (or none) to put them in")
    }
    const listed = options.hosts !== undefined ? yield* checkedHosts(options.hosts) : url?.hosts
    const candidates: ReadonlyArray<Candidate> = listed === undefined
      ? [{
        name: url?.hostList || `${options.host ?? "localhost"}:${options.port ?? 5432}`,
        config: {
          ...(url === undefined ? {} : { connectionString: Redacted.value(url.url) }),
          host: options.host,
          port: options.port
        } as Pg.ClientConfig
      }]
      : listed.map((host) => ({
        name: PgUrl.formatHost(host),
        config: url?.withHost !== undefined
          ? { connectionString: Redacted.value(url.withHost(host)) }
          : { host: host.host, port: host.port } as Pg.ClientConfig
      }))
    const attrs = yield* agreed("targetSessionAttrs", url?.targetSessionAttrs, options.targetSessionAttrs, PgUrl.sessionAttrs)
    const balance = yield* agreed("loadBalanceHosts", url?.loadBalanceHosts, options.loadBalanceHosts, PgUrl.loadBalanceModes)
    return new Targets(candidates, attrs ?? (candidates.length > 1 ? "read-write" : "any"), balance === "random", connectTimeout)
  })
