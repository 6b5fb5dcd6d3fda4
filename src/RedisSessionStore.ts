/**
 * The Redis `SessionStore`, on standalone Redis, Redis Cluster (sharded: a session's keys share a slot, sessions
 * spread over every master) or a Sentinel-managed master, through `ioredis` 5 (an optional peer, loaded only by this
 * module).
 *
 * Every primitive is one Lua script on one slot, with the store's clock passed in; Redis's own TTLs are only a
 * safety net a margin past each session's expiry. Same semantics as every backend (the conformance suite runs on
 * standalone Redis and on a 6-node Cluster). Redis acknowledges a write before any disk or replica has it: see
 * `replicas` and docs/operations.md.
 *
 * @since 0.3.0
 */
import { Config, type ConfigError, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import { durationOption } from "./internal/options.js"
import * as RedisBackend from "./internal/redisBackend.js"
import * as RedisLayout from "./internal/redisLayout.js"
import * as RedisConnection from "./internal/redisConnection.js"
import { InvalidConfig, SessionStoreError } from "./SessionError.js"
import type * as SessionKey from "./SessionKey.js"
import * as SessionStore from "./SessionStore.js"

/**
 * A Redis node: `"host:port"` or `{ host, port }`.
 *
 * @since 0.3.0
 * @category options
 */
export type Node = string | { readonly host: string; readonly port: number }

/**
 * Options of the Redis store. Give at most one of `url`, `host`/`port`, `cluster` and `sentinels`; without any,
 * the store connects to `127.0.0.1:6379`.
 *
 * @since 0.3.0
 * @category options
 */
export interface Options extends SessionStore.Options {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. */
  readonly url?: string | Redacted.Redacted<string> | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  /** Startup nodes of a Redis Cluster; the rest are discovered. */
  readonly cluster?: ReadonlyArray<Node> | undefined
  /** Sentinels watching the master named `sentinelName`. */
  readonly sentinels?: ReadonlyArray<Node> | undefined
  /** The master's name, with `sentinels`. Default `"mymaster"`. */
  readonly sentinelName?: string | undefined
  readonly username?: string | undefined
  readonly password?: string | Redacted.Redacted<string> | undefined
  /** The database, on a standalone server or a Sentinel's master. */
  readonly db?: number | undefined
  readonly tls?: boolean | undefined
  /**
   * Prepended to every key the store writes, so several stores (or apps) share one Redis. No `{` or `}`: the store
   * chooses the hash tags itself. Default `"effect-session:"`.
   */
  readonly keyPrefix?: string | undefined
  /** Opening a connection, and waiting for the first one at start-up. Default: the `timeout` (3 seconds). */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /**
   * Replicas each write waits for (`WAIT`, within the deadline) before it is acknowledged; a write that fewer
   * replicas confirmed fails with `SessionStoreError` (it may have been applied). Default 0: Redis acknowledges a
   * write when its master has it in memory, so a failover can lose the last writes.
   */
  readonly replicas?: number | undefined
  /** How long Redis keeps a session's keys past its expiry (their TTL; cleanup removes them first). Default 1 hour. */
  readonly ttlMargin?: Duration.DurationInput | undefined
  /**
   * Sends the commands made in the same tick in one write (ioredis auto-pipelining): a little less CPU on the Redis
   * server per command, much more in the app (measured in docs/benchmarks.md). Default `false`. Not on a Cluster.
   */
  readonly pipelining?: boolean | undefined
}

const nodeOf = (node: Node, option: string): Effect.Effect<{ host: string; port: number }, InvalidConfig> => {
  const parsed = typeof node === "string"
    ? { host: node.slice(0, node.lastIndexOf(":")), port: Number(node.slice(node.lastIndexOf(":") + 1)) }
    : { host: node.host, port: node.port }
  return parsed.host !== "" && Number.isInteger(parsed.port) && parsed.port > 0 && parsed.port < 65536
    ? Effect.succeed(parsed)
    : Effect.fail(new InvalidConfig({ option, reason: "must be \"host:port\" or { host, port } with a port from 1 to 65535" }))
}

const invalid = (option: string, reason: string) => Effect.fail(new InvalidConfig({ option, reason }))

const target = (options: Options): Effect.Effect<RedisConnection.Target, InvalidConfig> => {
  const given = [
    options.url !== undefined,
    options.host !== undefined || options.port !== undefined,
    options.cluster !== undefined,
    options.sentinels !== undefined
  ].filter(Boolean).length
  if (given > 1) return invalid("url", "give at most one of url, host/port, cluster and sentinels")
  if (options.url !== undefined) {
    const url = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
    return /^rediss?:\/\//.test(url) ? Effect.succeed({ _tag: "Url", url }) : invalid("url", "must start with redis:// or rediss://")
  }
  if (options.cluster !== undefined || options.sentinels !== undefined) {
    const option = options.cluster !== undefined ? "cluster" : "sentinels"
    const nodes = options.cluster ?? options.sentinels!
    if (nodes.length === 0) return invalid(option, "must name at least one node")
    return Effect.map(Effect.forEach(nodes, (node) => nodeOf(node, option)), (parsed) =>
      options.cluster !== undefined
        ? { _tag: "Cluster", nodes: parsed }
        : { _tag: "Sentinel", sentinels: parsed, name: options.sentinelName ?? "mymaster" })
  }
  return Effect.map(nodeOf({ host: options.host ?? "127.0.0.1", port: options.port ?? 6379 }, "port"), (node) => ({
    _tag: "Server",
    ...node
  }))
}

const settingsOf = (options: Options) =>
  Effect.gen(function*() {
    const timeout = yield* durationOption("timeout", options.timeout ?? SessionStore.defaults.timeout, 1)
    const prefix = options.keyPrefix ?? "effect-session:"
    if (/[{}]/.test(prefix) || prefix.length > 256) {
      return yield* invalid("keyPrefix", "must hold no { or } and be at most 256 characters")
    }
    const replicas = options.replicas ?? 0
    if (!Number.isSafeInteger(replicas) || replicas < 0) return yield* invalid("replicas", "must be a non-negative integer")
    const pipelining = options.pipelining === true
    if (pipelining && options.cluster !== undefined) {
      return yield* invalid("pipelining", "is not available on a Cluster (ioredis would route a pipelined script by its SHA, not its key)")
    }
    const db = options.db
    if (db !== undefined && (!Number.isSafeInteger(db) || db < 0)) return yield* invalid("db", "must be a non-negative integer")
    const password = options.password === undefined || typeof options.password === "string"
      ? options.password
      : Redacted.value(options.password)
    const settings: RedisConnection.Settings = {
      target: yield* target(options),
      username: options.username,
      password,
      db,
      tls: options.tls === true,
      connectTimeout: yield* durationOption("connectTimeout", options.connectTimeout ?? timeout, 1),
      timeout,
      replicas,
      pipelining
    }
    const margin = yield* durationOption("ttlMargin", options.ttlMargin ?? Duration.hours(1), 1_000)
    return { settings, config: { prefix, margin: Math.ceil(margin), timeout } satisfies RedisLayout.Config }
  })

/**
 * The Redis `Backend`, connected: the connection opens (within `connectTimeout`) when this runs, and closes with
 * the scope. Turn it into a store with `SessionStore.make` (what {@link make} does).
 *
 * @since 0.3.0
 * @category constructors
 */
export const backend = (
  options: Options = {}
): Effect.Effect<SessionStore.Backend<unknown>, InvalidConfig | SessionStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const { config, settings } = yield* settingsOf(options)
    const connection = yield* RedisConnection.connect(settings).pipe(
      Effect.mapError((cause) => new SessionStoreError({ operation: "connect", cause }))
    )
    return RedisBackend.make(connection, config)
  })

/**
 * Connects and builds the store; both close with the scope.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<SessionStore.Service, InvalidConfig | SessionStoreError, Scope.Scope> =>
  Effect.flatMap(backend(options), (redis) => SessionStore.make(redis, options))

/**
 * The store as a layer.
 *
 * @example
 * ```ts
 * import { RedisSessionStore } from "effect-session"
 *
 * const Sessions = RedisSessionStore.layer({ url: "redis://127.0.0.1:6379", keyPrefix: "app:session:" })
 * ```
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<SessionStore.SessionStore, InvalidConfig | SessionStoreError> =>
  Layer.scoped(SessionStore.SessionStore, make(options))

/**
 * {@link layer} with its options read through `Config`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { RedisSessionStore } from "effect-session"
 *
 * const Sessions = RedisSessionStore.layerConfig({
 *   url: Config.redacted("REDIS_URL"),
 *   keyPrefix: Config.string("SESSION_PREFIX").pipe(Config.withDefault("app:session:"))
 * })
 * ```
 *
 * @since 0.3.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<Options>
): Layer.Layer<SessionStore.SessionStore, InvalidConfig | SessionStoreError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))

/**
 * A new key for a rotation of the session `family` (its id's digest), in the family's slot group: what the store
 * uses, exported so its cost can be measured (256 candidate keys on average).
 *
 * @since 0.3.0
 * @category utils
 */
export const rotationKey: (family: Uint8Array) => SessionKey.SessionKey = RedisLayout.rotationKey
