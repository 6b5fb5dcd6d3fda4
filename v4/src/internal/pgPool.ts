/**
 * The `pg.Pool` this library builds and owns, behind a `PgClient` on it (pgPoolClient: `@effect/sql-pg` 4 has no
 * `PgClient.fromPool`).
 *
 * Owning the pool is what makes deadlines safe: a connection whose query outlived its deadline is discarded,
 * never handed to the next request (a lost reply would otherwise leave every later query on that connection
 * waiting behind it). It also carries keepalive, bounded waits for a connection, server-side `statement_timeout`
 * and `lock_timeout`, and lets the session store run its few hot statements as named prepared statements. Its
 * connections go where pgTargets sends them (several hosts: the primary), and pgPooler adapts it to PgBouncer.
 */
import * as Reactivity from "effect/reactivity/Reactivity"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Cause, Context, Duration, Effect, Layer, Redacted } from "effect"
import { createHash } from "node:crypto"
import type { ConnectionOptions } from "node:tls"
import Pg from "pg"
import { InvalidConfig, SessionStoreError } from "../SessionError.js"
import { durationOption, positiveInteger } from "./options.js"
import * as Deadline from "./deadline.js"
import * as PgPipeline from "./pgPipeline.js"
import * as PgPoolClient from "./pgPoolClient.js"
import * as PgPooler from "./pgPooler.js"
import * as PgTargets from "./pgTargets.js"
import type * as PgUrl from "./pgUrl.js"

/** Connection and pool settings: those of `PgClient.layer`, plus the deadlines. */
export interface PoolOptions {
  readonly url?: Redacted.Redacted | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly database?: string | undefined
  readonly username?: string | undefined
  readonly password?: Redacted.Redacted | undefined
  readonly ssl?: boolean | ConnectionOptions | undefined
  /**
   * Several servers, tried in order by every new connection (libpq's multi-host semantics), instead of `host` and
   * `port`. A `url` may list them instead: `postgres://user@h1:5432,h2:5432/db?target_session_attrs=read-write`.
   */
  readonly hosts?: ReadonlyArray<PgUrl.Host> | undefined
  /**
   * Which server a new connection wants, as libpq's `target_session_attrs` (also a URL parameter): `any`,
   * `read-write`, `read-only`, `primary`, `standby` or `prefer-standby`. A host that does not fit is passed over.
   * Default: `read-write` when several hosts are given (so that after a failover connections reach the new
   * primary, never a standby), else `any`.
   */
  readonly targetSessionAttrs?: PgUrl.TargetSessionAttrs | undefined
  /** libpq's `load_balance_hosts` (also a URL parameter): `random` starts each connection at a random host. Default `disable`. */
  readonly loadBalanceHosts?: PgUrl.LoadBalanceHosts | undefined
  /** Shown in `pg_stat_activity`. Default `"effect-session"`. */
  readonly applicationName?: string | undefined
  /** Pool size. Default 10. */
  readonly maxConnections?: number | undefined
  readonly minConnections?: number | undefined
  /** An idle connection is closed after this long. Default 30 seconds. */
  readonly idleTimeout?: Duration.Input | undefined
  /** Bounds both opening a connection and waiting for a free one in the pool. Default 3 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
  /** A connection is replaced after this long. Default: never. */
  readonly connectionTTL?: Duration.Input | undefined
  /**
   * Server-side `statement_timeout` of the pool's connections (every query on them, the app's included). Zero
   * disables it. Default 3 seconds.
   */
  readonly statementTimeout?: Duration.Input | undefined
  /** Server-side `lock_timeout` of the pool's connections. Zero disables it. Default 3 seconds. */
  readonly lockTimeout?: Duration.Input | undefined
  /** TCP keepalive on every connection, first probe after this idle time. Zero disables it. Default 10 seconds. */
  readonly keepAlive?: Duration.Input | undefined
  /**
   * Run the store's statements as named prepared statements (parsed once per connection). Turn it off behind a
   * pooler that does not keep a connection's prepared statements (PgBouncer in transaction mode before 1.21).
   * Default `true`.
   */
  readonly preparedStatements?: boolean | undefined
  /**
   * Connections in pg's pipeline mode for the session store's reads, beside the pool: concurrent reads share round
   * trips on them (about 1.8 times the throughput of the pool on the benchmark machine). Zero turns them off (the
   * reads then use the pool). Default 2.
   */
  readonly pipelinedReads?: number | undefined
  readonly transformResultNames?: ((name: string) => string) | undefined
  readonly transformQueryNames?: ((name: string) => string) | undefined
  readonly transformJson?: boolean | undefined
  readonly types?: Pg.CustomTypesConfig | undefined
  readonly spanAttributes?: Record<string, unknown> | undefined
}

/**
 * A pool this library built, beside the `PgClient` on it (provided with that client, though no layer's type says
 * so): `PgSessionStore` reads it from its context to take the fast path when its client is `client`.
 */
export class OwnedPool extends Context.Service<OwnedPool, {
  /** The client this pool serves. */
  readonly client: PgClient.PgClient
  readonly pool: Pg.Pool
  /** Whether the store may run named prepared statements on it. */
  readonly preparedStatements: boolean
  /** Pipelined connections for the store's reads, if any. */
  readonly pipeline: PgPipeline.Pipeline | undefined
  /** How the store batches its statements across sessions on this pool (see pgBatch). */
  readonly batching: Batching
}>()("effect-session/OwnedPool") {}

/** Statements in flight per batching lane (reads, writes), and callers per statement, at most. */
export interface Batching {
  readonly readsInFlight: number
  readonly writesInFlight: number
  readonly maxBatch: number
}

/**
 * The lanes' limits on a pool of `max` connections with `pipelined` pipelined ones. Fewer statements in flight
 * make larger batches: a few per lane keep the server busy while the next batch forms (reads: one per pipelined
 * connection; writes: up to 4, which did best on the benchmark's write route against 2 and 9).
 */
const batching = (max: number, pipelined: number): Batching => ({
  readsInFlight: Math.max(2, pipelined),
  writesInFlight: Math.max(1, Math.min(4, Math.floor(max / 2))),
  maxBatch: 64
})

/** Whether a client still has a query on the wire (pg keeps these internals stable across 8.x). */
const busy = (client: Pg.PoolClient): boolean => {
  const internals = client as unknown as {
    _getActiveQuery?: () => unknown
    _activeQuery?: unknown
    _queryQueue?: ReadonlyArray<unknown>
  }
  const active = internals._getActiveQuery?.() ?? internals._activeQuery
  return (active !== null && active !== undefined) || (internals._queryQueue?.length ?? 0) > 0
}

/**
 * A pool whose clients, when released with a query still in flight (an interrupted or timed-out query, whatever
 * code ran it) or after failing, are destroyed instead of going back to the pool.
 */
class DiscardingPool extends Pg.Pool {
  /** Whether the store's statements are still named here (see pgPooler). */
  readonly named = new PgPooler.NamedStatements()

  constructor(config: Pg.PoolConfig, private readonly targets: PgTargets.Targets) {
    super({ ...config, Client: targets.Client } as Pg.PoolConfig)
  }

  /**
   * `@effect/sql-pg` 0.x answered an interrupted query with `pool.query("SELECT pg_cancel_backend(<pid>)")` and handed
   * the connection back when either finished, so a late cancel could hit the next statement on that backend: someone
   * else's. The PgClient on this pool (pgPoolClient) sends none, and no such cancel reaches the server: the
   * interrupted query's connection, still busy when released, is destroyed instead (its backend ends the query).
   */
  override query(...args: Array<any>): any {
    if (typeof args[0] === "string" && /^SELECT pg_cancel_backend\(\d+\)$/.test(args[0])) {
      const callback = args.find((arg) => typeof arg === "function") as ((error?: Error, result?: unknown) => void) | undefined
      const result = { rows: [], rowCount: 0 }
      if (callback === undefined) return Promise.resolve(result)
      queueMicrotask(() => callback(undefined, result))
      return undefined
    }
    return (super.query as (...a: Array<any>) => any)(...args)
  }

  // pg's connect has callback and promise forms; both hand out clients whose release discards busy ones. A new
  // connection that failed on one host is tried again (the targets pick the next host), up to once per host.
  override connect(...args: Array<any>): any {
    const [callback] = args as [((...a: Array<any>) => void) | undefined]
    if (callback === undefined) {
      return new Promise((resolve, reject) => this.connect((error: Error | undefined, client: unknown) => error ? reject(error) : resolve(client)))
    }
    const attempt = (left: number): void =>
      super.connect((error: Error | undefined, client: Pg.PoolClient | undefined, done: unknown) => {
        if (client === undefined) {
          return left > 1 && PgTargets.isAttemptFailure(error) ? attempt(left - 1) : callback(error, client, done)
        }
        const hardened = discardWhenBusy(client)
        return callback(error, hardened, hardened.release)
      })
    attempt(this.targets.attempts)
  }
}

/**
 * Hardens a checked-out client: an `error` it emits while out of the pool (its backend terminated, its socket
 * reset) is caught instead of ending the process, and makes its release discard it; so does a query in flight, and
 * a statement refused because of the server's state (read-only, shutting down: see pgTargets).
 */
const discardWhenBusy = (client: Pg.PoolClient): Pg.PoolClient => {
  const release = client.release
  let failure: Error | undefined
  const onError = (error: Error) => void (failure = error)
  client.on("error", onError)
  client.release = (error?: Error | boolean) => {
    client.off("error", onError)
    return release(
      error || failure ||
        (busy(client) ? new Error("released with a query in flight: discarded") : undefined) ||
        (PgTargets.isRetired(client) ? new Error("the server is read-only or shutting down: discarded") : undefined)
    )
  }
  return client
}

const optionalMillis = (option: string, input: Duration.Input | undefined, fallback: number) =>
  input === undefined ? Effect.succeed(fallback) : durationOption(option, input, 0)

/** The pool's settings, validated. */
const settings = (options: PoolOptions) =>
  Effect.all({
    max: positiveInteger("maxConnections", options.maxConnections ?? 10),
    idle: optionalMillis("idleTimeout", options.idleTimeout, 30_000),
    connect: optionalMillis("connectTimeout", options.connectTimeout, 3_000),
    ttl: optionalMillis("connectionTTL", options.connectionTTL, 0),
    statement: optionalMillis("statementTimeout", options.statementTimeout, 3_000),
    lock: optionalMillis("lockTimeout", options.lockTimeout, 3_000),
    keepAlive: optionalMillis("keepAlive", options.keepAlive, 10_000),
    pipelined: options.pipelinedReads === undefined || options.pipelinedReads === 0
      ? Effect.succeed(options.pipelinedReads ?? 2)
      : positiveInteger("pipelinedReads", options.pipelinedReads)
  }).pipe(Effect.filterOrFail(
    ({ connect }) => connect > 0,
    () => new InvalidConfig({ option: "connectTimeout", reason: "must be positive: a wait for a connection must end" })
  ))

/**
 * A `PgClient` (and `SqlClient`) on a pool this library owns: hardened as described above, registered so that
 * `PgSessionStore` takes its fast path on it, and closed with the layer.
 */
export const layerClient = (
  options: PoolOptions
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, InvalidConfig | SessionStoreError> =>
  Layer.effectContext(Effect.gen(function*() {
    const s = yield* settings(options)
    const targets = yield* PgTargets.make(options, s.connect)
    const connection = {
      // The first host's: each connection then picks its own (and @effect/sql-pg reads these for its spans).
      ...targets.candidates[0]!.config,
      database: options.database,
      user: options.username,
      password: options.password === undefined ? undefined : Redacted.value(options.password),
      ssl: options.ssl,
      application_name: options.applicationName ?? "effect-session",
      connectionTimeoutMillis: s.connect,
      ...(s.statement > 0 ? { statement_timeout: s.statement } : {}),
      ...(s.lock > 0 ? { lock_timeout: s.lock } : {}),
      keepAlive: s.keepAlive > 0,
      keepAliveInitialDelayMillis: s.keepAlive,
      types: options.types
    } as Pg.ClientConfig
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const pool = new DiscardingPool({
          ...connection,
          max: s.max,
          min: options.minConnections,
          idleTimeoutMillis: s.idle,
          ...(s.ttl > 0 ? { maxLifetimeSeconds: Math.ceil(s.ttl / 1000) } : {})
        } as Pg.PoolConfig, targets)
        // An idle client that fails is removed by the pool; without a listener the error would end the process.
        pool.on("error", () => {})
        return pool
      }),
      (pool) => Effect.tryPromise(() => pool.end()).pipe(Effect.timeoutOption(Duration.seconds(2)), Effect.ignore)
    )
    // One connection now: a server (or a pooler) that refuses the pool's settings says so at start-up, by name.
    yield* Effect.tryPromise({
      try: () => pool.connect().then((client: Pg.PoolClient) => client.release()),
      catch: (cause) => PgPooler.refusedStartup(cause) ?? new SessionStoreError({ operation: "connect", cause })
    })
    const client = yield* PgPoolClient.make(pool, {
      config: PgPoolClient.configOf(options, targets.candidates[0]!.config),
      spanAttributes: options.spanAttributes,
      transformResultNames: options.transformResultNames,
      transformQueryNames: options.transformQueryNames,
      transformJson: options.transformJson,
      open: () => PgTargets.open(targets, connection)
    })
    const pipeline = s.pipelined > 0 && PgPipeline.supported()
      ? namedOn(pool.named, yield* PgPipeline.make(connection, s.pipelined, (config) => PgTargets.open(targets, config)))
      : undefined
    return Context.make(PgClient.PgClient, client).pipe(
      Context.add(SqlClient.SqlClient, client),
      Context.add(OwnedPool, {
        client,
        pool,
        preparedStatements: options.preparedStatements !== false,
        pipeline,
        batching: batching(s.max, pipeline === undefined ? 0 : s.pipelined)
      })
    )
  })).pipe(Layer.provide(Reactivity.layer))

/** A pipeline whose named statements follow the pool's `named` switch. */
const namedOn = (state: PgPooler.NamedStatements, pipeline: PgPipeline.Pipeline): PgPipeline.Pipeline => ({
  query: (name, text, values, timeoutMs) => PgPooler.named(state, name, (n) => pipeline.query(n, text, values, timeoutMs))
})

/**
 * Runs a statement on the pool, as a named prepared statement when `name` is given (parsed once per connection,
 * then only bound and executed) unless the pool found that the server loses them (see pgPooler), within
 * `timeoutMs`: waiting for a connection included.
 */
export const query = <Row>(
  pool: Pg.Pool,
  name: string | undefined,
  text: string,
  values: ReadonlyArray<unknown>,
  timeoutMs: number
): Effect.Effect<ReadonlyArray<Row>, Error> => {
  const run = (named: string | undefined) => statement<Row>(pool, { name: named, text, values, timeoutMs })
  return pool instanceof DiscardingPool ? PgPooler.named(pool.named, name, run) : run(name)
}

/**
 * One statement on the pool within `timeoutMs`. When the deadline passes, or the caller is interrupted, the
 * connection is released with an error, which destroys it; a timer is all it costs, so the hot path stays light.
 */
const statement = <Row>(
  pool: Pg.Pool,
  { name, text, timeoutMs, values }: {
    readonly name: string | undefined
    readonly text: string
    readonly values: ReadonlyArray<unknown>
    readonly timeoutMs: number
  }
): Effect.Effect<ReadonlyArray<Row>, Error> =>
  Deadline.callback<ReadonlyArray<Row>, Error>(timeoutMs, () => new Cause.TimeoutError(`no answer within ${timeoutMs} ms`), (settle) => {
    let abandoned: Deadline.Abort | undefined
    let release: ((error?: Error) => void) | undefined
    pool.connect((error, client, done) => {
      if (abandoned !== undefined) return client === undefined ? undefined : done()
      if (error !== undefined || client === undefined) return settle(Effect.fail(error ?? new Error("no connection")))
      release = done
      // pg's own parsers whatever `types` the app configured: the store's columns must read as the store expects.
      const config = { text, values: values as Array<unknown>, types: Pg.types }
      client.query<any>(name === undefined ? config : { ...config, name }, (error, result) => {
        if (abandoned !== undefined) return
        done()
        settle(error ? Effect.fail(error) : Effect.succeed(result.rows as ReadonlyArray<Row>))
      })
    })
    return (reason) => {
      abandoned = reason
      release?.(new Error(`${reason === "deadline" ? "deadline passed" : "interrupted"}: connection discarded`))
    }
  })

/** A statement name unique to its text, so stores on different tables never share a prepared statement. */
export const statementName = (text: string) => `es_${createHash("sha1").update(text).digest("hex").slice(0, 16)}`
