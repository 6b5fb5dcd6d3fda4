/**
 * Several hosts on the owned pool, against the shared server (never stopped): a host that refuses connections, one
 * that never answers (a TCP proxy's black hole), one that is not what `target_session_attrs` asks for, and a
 * connection whose server turned read-only. Real connections only; every wait is bounded.
 */
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted } from "effect"
import { createServer } from "node:net"
import { PgSessionStore, SessionStore } from "../../src/index.js"
import * as PgPool from "../../src/internal/pgPool.js"
import { defaultUrl } from "../support/database.js"
import * as TcpProxy from "../support/tcpProxy.js"

const databaseUrl = new URL(process.env.DATABASE_URL || defaultUrl)
const server = { host: databaseUrl.hostname, port: Number(databaseUrl.port || 5432) }

/** A port nothing listens on: taken from the system, then closed. */
const closedPort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const probe = createServer()
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address()
      probe.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
    })
  })
)

/** The server's URL with the given host list (`h:p,h:p`) and query. */
const urlWith = (hostList: string, query = "") => {
  const { username, password, pathname } = databaseUrl
  return Redacted.make(`postgres://${username}${password ? `:${password}` : ""}@${hostList}${pathname}${query}`)
}

/** A store and its client on an owned pool built from `options`, without cleanup, on a throwaway table. */
const storeOn = (options: PgSessionStore.PoolOptions) =>
  Effect.gen(function*() {
    const tableName = `es_hosts_${Math.random().toString(36).slice(2, 10)}`
    const context = yield* Layer.build(PgSessionStore.layerPool({ tableName, cleanupInterval: 0, ...options }))
    const sql = Context.get(context, SqlClient.SqlClient)
    yield* Effect.addFinalizer(() => sql.unsafe(`DROP TABLE IF EXISTS ${tableName}`).pipe(Effect.ignore))
    return { store: Context.get(context, SessionStore.SessionStore), sql, client: Context.get(context, PgClient.PgClient) }
  })

/** An error and its causes. */
const causes = (error: unknown): ReadonlyArray<{ readonly name?: string; readonly message?: string }> => {
  const chain: Array<{ name?: string; message?: string; cause?: unknown }> = []
  for (let e = error; typeof e === "object" && e !== null && chain.length < 6; e = (e as { cause?: unknown }).cause) {
    chain.push(e as { name?: string })
  }
  return chain
}

/** A round of the store's work: create, read (pipelined), write, rotate. */
const workload = (store: SessionStore.Service) =>
  Effect.gen(function*() {
    const key = yield* store.generate({ value: "a" })
    expect(yield* store.modify(key, (v) => v + "b")).toBe("ab")
    const { key: next } = yield* store.rotate(key, (v) => v)
    expect((yield* store.get(next)).value).toBe("ab")
  })

describe("several hosts (the shared server is the only one that works)", () => {
  it.live("a first host that refuses connections is passed over, in a URL list and in hosts", () =>
    Effect.gen(function*() {
      const dead = yield* closedPort
      const viaUrl = yield* storeOn({ url: urlWith(`127.0.0.1:${dead},${server.host}:${server.port}`) })
      yield* workload(viaUrl.store)
      const viaHosts = yield* storeOn({
        url: urlWith(`${server.host}:${server.port}`),
        hosts: [{ host: "127.0.0.1", port: dead }, server]
      })
      yield* workload(viaHosts.store)
      // The app's PgClient on that pool goes to the live host as well.
      expect(yield* viaHosts.sql<{ ok: number }>`SELECT 1 AS ok`).toEqual([{ ok: 1 }])
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("a first host that never answers costs one connect timeout, then is skipped while it stays dead", () =>
    Effect.gen(function*() {
      const hole = yield* TcpProxy.make(server)
      hole.setMode({ _tag: "blackhole" })
      const started = Date.now()
      const { store } = yield* storeOn({
        url: urlWith(`127.0.0.1:${hole.port},${server.host}:${server.port}`),
        connectTimeout: 500,
        timeout: 5_000,
        maxConnections: 4
      })
      const built = Date.now() - started
      expect(built).toBeGreaterThanOrEqual(450) // the first connection waited on the black hole
      // New connections (4 concurrent ones: the pool grows) go straight to the live host.
      const again = Date.now()
      yield* Effect.all(Array.from({ length: 8 }, () => workload(store)), { concurrency: 8 })
      expect(hole.accepted()).toBe(1) // no new connection went to the black hole again
      expect(Date.now() - again).toBeLessThan(2_000)
      console.log(`HOSTS black-holed first host: start-up ${built} ms, then 8 rounds in ${Date.now() - again} ms`)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("no host fits target_session_attrs: the layer fails with the reason; primary fits", () =>
    Effect.gen(function*() {
      const refused = yield* Effect.flip(storeOn({ url: urlWith(`${server.host}:${server.port}`, "?target_session_attrs=standby") }))
      expect(refused).toMatchObject({ _tag: "SessionStoreError" })
      const mismatch = causes(refused).find((e) => e.name === "SessionAttrsMismatch")
      expect(mismatch?.message).toBe(`${server.host}:${server.port} is a read-write primary, not standby`)
      const { store } = yield* storeOn({ hosts: [server, server], url: urlWith("x"), targetSessionAttrs: "primary" })
      yield* workload(store)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("a pooled connection that hits 'read-only transaction' (25006) is discarded, not reused", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(PgPool.layerClient({ url: urlWith(`${server.host}:${server.port}`), maxConnections: 1 }))
      const { pool } = Context.get(context as unknown as Context.Context<PgPool.OwnedPool>, PgPool.OwnedPool)
      const sql = Context.get(context, SqlClient.SqlClient)
      const pid = Effect.map(PgPool.query<{ pid: number }>(pool, undefined, "SELECT pg_backend_pid() AS pid", [], 5_000), ([row]) => row!.pid)
      // The connection's server turns read-only under it (as a demoted primary's would).
      const first = yield* pid
      yield* PgPool.query(pool, undefined, "SET default_transaction_read_only = on", [], 5_000)
      expect(yield* pid).toBe(first) // an ordinary statement keeps the connection
      // On the store's path: the refused write fails, and its connection is gone.
      const refused = yield* Effect.flip(PgPool.query(pool, undefined, "CREATE TEMP TABLE t (x int)", [], 5_000))
      expect((refused as { code?: string }).code).toBe("25006")
      const second = yield* pid
      expect(second).not.toBe(first)
      // On the app's path (the PgClient on the same pool): the same.
      yield* PgPool.query(pool, undefined, "SET default_transaction_read_only = on", [], 5_000)
      const appRefused = yield* Effect.flip(sql.unsafe("CREATE TEMP TABLE t (x int)"))
      expect(String((appRefused.reason.cause as { code?: string }).code)).toBe("25006")
      expect(yield* pid).not.toBe(second)
      yield* PgPool.query(pool, undefined, "CREATE TEMP TABLE t (x int)", [], 5_000) // read-write again
    }).pipe(Effect.scoped), { timeout: 30_000 })
})
