/**
 * Redis for the tests: the shared server on 127.0.0.1:6379 (never flushed: every store gets a key prefix of its
 * own, whose keys are deleted when it closes), and throwaway servers of the test's own (`redisCluster.ts`).
 */
import { Effect, Layer } from "effect"
import { Cluster, Redis } from "ioredis"
import { type RedisSessionStore, SessionStore } from "../../src/index.js"
import * as Store from "../../src/RedisSessionStore.js"

/** The shared server. */
export const shared = { host: "127.0.0.1", port: 6379 } as const

/** A key prefix no other test uses. */
export const uniquePrefix = (label = "t") => `es-test:${label}:${process.pid}:${Math.random().toString(36).slice(2, 10)}:`

/** Every key under `prefix` on every master of `client`, by SCAN (bounded). */
export const keysUnder = async (client: Redis | Cluster, prefix: string): Promise<Array<string>> => {
  const masters = client instanceof Cluster ? client.nodes("master") : [client]
  const keys: Array<string> = []
  for (const node of masters) {
    let cursor = "0"
    for (let i = 0; i < 100_000; i++) {
      // A node that is down (a fault test killed it) holds nothing to find.
      const [next, batch] = await node.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000).catch(() => ["0", []] as [string, Array<string>])
      keys.push(...batch)
      cursor = next
      if (cursor === "0") break
    }
  }
  return keys
}

/** Deletes every key under `prefix` (one key per command: they may lie in different slots). */
export const deleteUnder = async (client: Redis | Cluster, prefix: string) => {
  const keys = await keysUnder(client, prefix)
  for (let i = 0; i < keys.length; i += 100) {
    await Promise.all(keys.slice(i, i + 100).map((key) => client.del(key).catch(() => 0)))
  }
  return keys.length
}

/** An admin client in the scope (not the store's). */
export const adminClient = (connection: { readonly cluster?: ReadonlyArray<string> }) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      if (connection.cluster === undefined) return new Redis({ ...shared, lazyConnect: false }) as Redis | Cluster
      const cluster = new Cluster(connection.cluster.map((node) => {
        const [host, port] = node.split(":")
        return { host: host!, port: Number(port) }
      }))
      await new Promise<void>((resolve, reject) => {
        cluster.once("ready", () => resolve())
        cluster.once("error", reject)
      })
      return cluster as Redis | Cluster
    }),
    (client) => Effect.sync(() => client.disconnect())
  )

/**
 * A store on `connection` under a fresh prefix; when it closes, its keys are deleted (by a client of the test's
 * own). The options are the conformance suite's.
 */
export const storeLayer = (connection: Store.Options) => (options: SessionStore.Options = {}) =>
  Layer.effect(
    SessionStore.SessionStore,
    Effect.gen(function*() {
      const keyPrefix = uniquePrefix()
      const admin = yield* adminClient(
        connection.cluster === undefined ? {} : { cluster: connection.cluster.map((n) => typeof n === "string" ? n : `${n.host}:${n.port}`) }
      )
      yield* Effect.addFinalizer(() => Effect.ignore(Effect.tryPromise(() => deleteUnder(admin, keyPrefix))))
      return yield* Store.make({ ...connection, ...options, keyPrefix } satisfies RedisSessionStore.Options)
    })
  )
