/**
 * A `PgClient` (and `SqlClient`) on the `pg.Pool` this library owns (see pgPool): the Effect 4 line's stand-in for
 * `PgClient.fromPool` of `@effect/sql-pg` 0.x, which `@effect/sql-pg` 4 (its own wire-protocol driver, no `pg`) no
 * longer has. The app's statements, transactions included, run on the very connections of the store's pool, so they
 * get what the pool gives (several hosts and failover, keepalive, `statement_timeout` and `lock_timeout`, bounded
 * waits, a connection discarded when it is released busy) and the store's statements join the app's transactions.
 *
 * An interrupted statement sends no `pg_cancel_backend` (which could cancel the next statement on that backend,
 * someone else's): its connection, still busy when released, is destroyed instead. Streams read the whole result
 * (no cursor). `listen` holds a connection of its own per call; `json` binds its value as JSON text.
 */
import { PgClient, PgTypes } from "@effect/sql-pg"
import * as PgConnection from "@effect/sql-pg/PgConnection"
import { Cause, Effect, Queue, Redacted, Scope, Stream } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import { SqlClient, type SqlConnection, SqlError, Statement } from "effect/sql"
import Pg from "pg"

/** What the client says of itself (`PgClient.config`), and how it transforms names. */
export interface ClientOptions {
  readonly config: PgClient.PgClientConfig
  readonly spanAttributes?: Record<string, unknown> | undefined
  readonly transformResultNames?: ((name: string) => string) | undefined
  readonly transformQueryNames?: ((name: string) => string) | undefined
  readonly transformJson?: boolean | undefined
  /** Opens a connection of its own (for `listen`), to the host the pool's connections go to. */
  readonly open: () => Promise<Pg.Client>
}

/** `SqlError` of a `pg` failure, its reason from the SQLSTATE (as `@effect/sql-pg` classifies them). */
const sqlError = (cause: unknown, operation: string): SqlError.SqlError => {
  const code = (cause as { code?: unknown } | null)?.code
  const message = cause instanceof Error ? cause.message : String(cause)
  const props = { cause, message, operation }
  const state = typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
  const reason = state === undefined
    ? (typeof code === "string" ? new SqlError.ConnectionError(props) : new SqlError.UnknownError(props))
    : state.startsWith("08")
    ? new SqlError.ConnectionError(props)
    : state.startsWith("28")
    ? new SqlError.AuthenticationError(props)
    : state === "42501"
    ? new SqlError.AuthorizationError(props)
    : state.startsWith("42")
    ? new SqlError.SqlSyntaxError(props)
    : state === "23505"
    ? new SqlError.UniqueViolation({ ...props, constraint: String((cause as { constraint?: unknown }).constraint ?? "unknown") })
    : state.startsWith("23")
    ? new SqlError.ConstraintError(props)
    : state === "40P01"
    ? new SqlError.DeadlockError(props)
    : state === "40001"
    ? new SqlError.SerializationError(props)
    : state === "55P03"
    ? new SqlError.LockTimeoutError(props)
    : state === "57014"
    ? new SqlError.StatementTimeoutError(props)
    : new SqlError.UnknownError(props)
  return new SqlError.SqlError({ reason })
}

/** Parameters as pg takes them: `PgClient.json` values (typed parameters of `@effect/sql-pg` 4) as JSON text. */
const values = (params: ReadonlyArray<unknown>): Array<unknown> =>
  params.map((param) => PgTypes.isParameter(param) ? (isJson(param.oid) ? JSON.stringify(param.value) : param.value) : param)

const isJson = (oid: number) => oid === 114 || oid === 3802

/** Closes a client's socket at once (`end()` would wait for the statement in flight). */
const destroy = (client: Pg.PoolClient) =>
  (client as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream?.destroy?.()

type Query = { readonly text: string; readonly values: Array<unknown>; readonly rowMode?: "array" }

/** One query on `client`; `undefined` when `client` is a checked-out connection of the pool. */
const onClient = (client: Pg.PoolClient, query: Query, resume: (result: Effect.Effect<Pg.QueryResult, SqlError.SqlError>) => void) =>
  client.query(query as Pg.QueryConfig, (error, result) =>
    resume(error ? Effect.fail(sqlError(error, "execute")) : Effect.succeed(result)))

/** A connection: one checked out for a transaction (`client`), or the pool itself (a connection per statement). */
class Connection implements SqlConnection.Connection {
  constructor(private readonly pool: Pg.Pool, private readonly client?: Pg.PoolClient) {}

  private raw(query: Query): Effect.Effect<Pg.QueryResult, SqlError.SqlError> {
    const reserved = this.client
    // On a reserved connection (a transaction's) an interrupted statement closes the connection at once: the server
    // rolls the transaction back, and the scope's release discards the connection (see pgPool). Waiting for the
    // statement would hold up the interruption and the ROLLBACK behind it until the statement_timeout.
    if (reserved !== undefined) {
      return Effect.callback((resume) => {
        let settled = false
        onClient(reserved, query, (result) => {
          settled = true
          resume(result)
        })
        return Effect.sync(() => settled || destroy(reserved))
      })
    }
    return Effect.callback((resume) => {
      let done = false
      let client: Pg.PoolClient | undefined
      const onError = (cause: Error) => {
        cleanup(cause)
        resume(Effect.fail(sqlError(cause, "connection")))
      }
      const cleanup = (cause?: Error) => {
        if (!done) client?.release(cause)
        done = true
        client?.off("error", onError)
      }
      this.pool.connect((cause, checkedOut) => {
        if (done) return checkedOut?.release()
        if (cause || checkedOut === undefined) return resume(Effect.fail(sqlError(cause ?? new Error("no connection"), "acquire")))
        client = checkedOut
        client.once("error", onError)
        onClient(client, query, (result) => {
          cleanup()
          resume(result)
        })
      })
      // Interrupted: the connection goes back busy, which destroys it (its backend ends the statement).
      return Effect.sync(() => cleanup())
    })
  }

  private rows(sql: string, params: ReadonlyArray<unknown>) {
    return Effect.map(this.raw({ text: sql, values: values(params) }), (result) =>
      // Several statements in one text answer one result each.
      Array.isArray(result) ? result.map((r: Pg.QueryResult) => r.rows ?? []) : result.rows ?? [])
  }

  execute(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) {
    return transformRows ? Effect.map(this.rows(sql, params), transformRows) : this.rows(sql, params)
  }
  executeRaw(sql: string, params: ReadonlyArray<unknown>) {
    return this.raw({ text: sql, values: values(params) })
  }
  executeValues(sql: string, params: ReadonlyArray<unknown>) {
    return Effect.map(this.raw({ text: sql, values: values(params), rowMode: "array" }), (result) => result.rows)
  }
  executeValuesUnprepared(sql: string, params: ReadonlyArray<unknown>) {
    return this.executeValues(sql, params)
  }
  executeUnprepared(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) {
    return this.execute(sql, params, transformRows)
  }
  executeStream(
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) {
    return Stream.unwrap(Effect.map(this.execute(sql, params, transformRows), (rows) => Stream.fromIterable(rows)))
  }
}

/** A connection of the pool for the scope (a transaction's): released when the scope closes, discarded if busy. */
const reserve = (pool: Pg.Pool): Effect.Effect<Connection, SqlError.SqlError, Scope.Scope> =>
  Effect.flatMap(Effect.scope, (scope) =>
    Effect.callback<Connection, SqlError.SqlError>((resume) => {
      let failure: Error | undefined
      let abandoned = false
      const onError = (cause: Error) => void (failure = cause)
      pool.connect((error, client, release) => {
        // The caller was interrupted while it waited: the connection goes straight back.
        if (abandoned) return client === undefined ? undefined : release()
        if (error || client === undefined) return resume(Effect.fail(sqlError(error ?? new Error("no connection"), "acquire")))
        client.on("error", onError)
        resume(Effect.as(
          Scope.addFinalizer(scope, Effect.sync(() => {
            client.off("error", onError)
            release(failure)
          })),
          new Connection(pool, client)
        ))
      })
      return Effect.sync(() => void (abandoned = true))
    }))

/** `LISTEN channel` on a connection of its own, held until the scope closes. */
const listen = (options: ClientOptions, channel: string) =>
  Effect.gen(function*() {
    const client = yield* Effect.acquireRelease(
      Effect.tryPromise({ try: options.open, catch: (cause) => sqlError(cause, "listen") }),
      (client) => Effect.promise(() => client.end().catch(() => {})).pipe(Effect.timeoutOption(1000))
    )
    const queue = yield* Queue.unbounded<PgConnection.Notification, SqlError.SqlError>()
    client.on("notification", (message) => {
      if (message.channel === channel) {
        Queue.offerUnsafe(queue, { processId: message.processId, channel: message.channel, payload: message.payload ?? "" })
      }
    })
    client.on("error", (cause) => void Queue.failCauseUnsafe(queue, Cause.fail(sqlError(cause, "listen"))))
    yield* Effect.tryPromise({
      try: () => client.query(`LISTEN ${Pg.escapeIdentifier(channel)}`),
      catch: (cause) => sqlError(cause, "listen")
    })
    return queue as Queue.Dequeue<PgConnection.Notification, SqlError.SqlError>
  })

const PgJson = Statement.custom<Statement.Custom<"PgJson", unknown>>("PgJson")

/** The `PgClient` on `pool`. */
export const make = (
  pool: Pg.Pool,
  options: ClientOptions
): Effect.Effect<PgClient.PgClient, never, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const { config } = options
    const client = yield* SqlClient.make({
      acquirer: Effect.succeed(new Connection(pool)),
      transactionAcquirer: reserve(pool),
      compiler: PgClient.makeCompiler(options.transformQueryNames, options.transformJson),
      driver: "pg",
      spanAttributes: [
        ...(options.spanAttributes ? Object.entries(options.spanAttributes) : []),
        ["db.system.name", "postgresql"],
        ["db.namespace", config.database ?? config.username ?? "postgres"],
        ["server.address", config.host ?? "localhost"],
        ["server.port", config.port ?? 5432]
      ],
      transformRows: options.transformResultNames
        ? Statement.defaultTransforms(options.transformResultNames, options.transformJson).array
        : undefined
    })
    return Object.assign(client, {
      [PgClient.TypeId]: PgClient.TypeId,
      config,
      json: (value: unknown) => Statement.fragment([PgJson(value)]),
      listen: (channel: string) => listen(options, channel),
      notify: (channel: string, payload: string) =>
        Effect.asVoid(Effect.scoped(Effect.flatMap(
          Effect.succeed(new Connection(pool)),
          (connection) => connection.executeRaw("SELECT pg_notify($1, $2)", [channel, payload])
        )))
    }) as PgClient.PgClient
  })

/** The `PgClient.config` of a pool's client: the connection as the app gave it (for spans, and to copy it). */
export const configOf = (options: {
  readonly url?: Redacted.Redacted | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly database?: string | undefined
  readonly username?: string | undefined
  readonly password?: Redacted.Redacted | undefined
  readonly ssl?: PgClient.PgClientConfig["ssl"]
  readonly applicationName?: string | undefined
  readonly spanAttributes?: Record<string, unknown> | undefined
  readonly transformResultNames?: ((name: string) => string) | undefined
  readonly transformQueryNames?: ((name: string) => string) | undefined
  readonly transformJson?: boolean | undefined
}, first: Pg.ClientConfig): PgClient.PgClientConfig => {
  let fromUrl: { host?: string; port?: number; database?: string; username?: string } = {}
  try {
    const url = options.url === undefined ? undefined : new URL(Redacted.value(options.url))
    if (url !== undefined && !url.host.includes(",")) {
      fromUrl = {
        ...(url.hostname === "" ? {} : { host: url.hostname.replace(/^\[|\]$/g, "") }),
        ...(url.port === "" ? {} : { port: Number(url.port) }),
        ...(url.pathname.length > 1 ? { database: decodeURIComponent(url.pathname.slice(1)) } : {}),
        ...(url.username === "" ? {} : { username: decodeURIComponent(url.username) })
      }
    }
  } catch {
    // Not a URL the client can read: spans name the first host only.
  }
  return {
    url: options.url,
    host: options.host ?? fromUrl.host ?? (typeof first.host === "string" ? first.host : undefined),
    port: options.port ?? fromUrl.port ?? first.port,
    database: options.database ?? fromUrl.database,
    username: options.username ?? fromUrl.username,
    password: options.password,
    ssl: options.ssl,
    applicationName: options.applicationName ?? "effect-session",
    spanAttributes: options.spanAttributes,
    transformResultNames: options.transformResultNames,
    transformQueryNames: options.transformQueryNames,
    transformJson: options.transformJson
  }
}
