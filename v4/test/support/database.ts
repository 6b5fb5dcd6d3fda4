import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Redacted } from "effect"
import { createConnection } from "node:net"
import * as EmbeddedPostgres from "../../src/EmbeddedPostgres.js"
import * as PgPool from "../../src/internal/pgPool.js"

/** The server the tests use when DATABASE_URL is unset. */
export const defaultUrl = "postgres://postgres@127.0.0.1:5432/test"

const answers = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host, port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
  })

let announced = false

/**
 * The server the "server" suites use: DATABASE_URL if set (and then it must work, so CI can never pass without its
 * server), else the local default server if one answers, else `undefined` (the embedded engine), said in one line.
 */
export const serverUrl = Effect.promise(async (): Promise<string | undefined> => {
  const url = process.env.DATABASE_URL
  if (url !== undefined && url !== "") return url
  if (await answers("127.0.0.1", 5432)) return defaultUrl
  if (!announced) {
    announced = true
    console.log(`no DATABASE_URL and no PostgreSQL server at ${defaultUrl}: running the server suite on the embedded engine`)
  }
  return undefined
})

type Client = Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, unknown>

/** A `PgClient` of `@effect/sql-pg`'s own (the store's general path) on the test server. */
export const ServerPgClient: Client = Layer.unwrap(Effect.map(serverUrl, (url): Client =>
  url === undefined ? EmbeddedPostgres.layer() : PgClient.layer({ url: Redacted.make(url), maxConnections: 10 })
))

/** A `PgClient` on the pool this library builds (the store's fast path) on the test server. */
export const ServerOwnedPool = (options: PgPool.PoolOptions = {}): Client =>
  Layer.unwrap(Effect.map(serverUrl, (url): Client =>
    url === undefined
      ? EmbeddedPostgres.layer()
      : PgPool.layerClient({ url: Redacted.make(url), maxConnections: 10, ...options })
  ))

/** A schema of the test file's own, dropped (with its tables) when the suite ends. */
export class TestSchema extends Context.Service<TestSchema, {
  readonly name: string
  /** A fresh, unused table name inside the schema. */
  readonly table: () => string
}>()("test/TestSchema") {}

export const TestSchemaLive = Layer.effect(
  TestSchema,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const name = `es_test_${Math.random().toString(36).slice(2, 10)}`
    yield* Effect.acquireRelease(
      sql.unsafe(`CREATE SCHEMA "${name}"`),
      () => sql.unsafe(`DROP SCHEMA "${name}" CASCADE`).pipe(Effect.orDie)
    )
    let counter = 0
    return { name, table: () => `${name}.sessions_${++counter}` }
  })
)

/** A database and a schema for one test file. */
export const withSchema = <E>(client: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, E>) =>
  Layer.provideMerge(TestSchemaLive, client)
