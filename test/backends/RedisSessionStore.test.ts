/**
 * The Redis store: the conformance suite on the shared standalone server and on a 6-node Cluster (3 masters, 3
 * replicas) the file builds and tears down, then what only a sharded Cluster can show: a session's keys in one
 * slot through its rotations, sessions spread over every master, the subject index repaired when read, and paging
 * across shards.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Chunk, Context, Effect, Layer, Metric, Stream, TestClock } from "effect"
import { type Cluster, Redis } from "ioredis"
import { createHash } from "node:crypto"
import * as Observability from "../../src/internal/observability.js"
import { RedisSessionStore, SessionKey, SessionStore } from "../../src/index.js"
import { conformance } from "../support/conformance.js"
import { adminClient, deleteUnder, keysUnder, shared, storeLayer, uniquePrefix } from "../support/redis.js"
import * as RedisCluster from "../support/redisCluster.js"

class TestCluster extends Context.Tag("test/RedisCluster")<TestCluster, RedisCluster.TestCluster>() {}

const ClusterLive = Layer.scoped(TestCluster, RedisCluster.cluster([7001, 7002, 7003, 7004, 7005, 7006]))

const onCluster = (options?: SessionStore.Options) =>
  Layer.unwrapEffect(Effect.map(TestCluster, ({ nodes }) => storeLayer({ cluster: nodes })(options)))

conformance("RedisSessionStore on standalone Redis", Layer.empty, storeLayer(shared))
conformance("RedisSessionStore on standalone Redis, pipelining", Layer.empty, storeLayer({ ...shared, pipelining: true }))
conformance("RedisSessionStore on a Redis Cluster", ClusterLive, onCluster)

const hex = (key: SessionKey.SessionKey) => Buffer.from(SessionKey.hash(key)).toString("hex")

/** A store on the cluster under a prefix the test knows, and an admin client; keys deleted afterwards. */
const clusterStore = (options: RedisSessionStore.Options = {}) =>
  Effect.gen(function*() {
    const { nodes } = yield* TestCluster
    const keyPrefix = uniquePrefix("cluster")
    const admin = (yield* adminClient({ cluster: nodes })) as Cluster
    yield* Effect.addFinalizer(() => Effect.ignore(Effect.tryPromise(() => deleteUnder(admin, keyPrefix))))
    const store = yield* RedisSessionStore.make({ cluster: nodes, keyPrefix, cleanupInterval: 0, ...options })
    const slot = (key: string) => Effect.promise(() => admin.cluster("KEYSLOT", key) as Promise<number>)
    return { store, admin, keyPrefix, slot }
  })

layer(ClusterLive, { timeout: 120_000 })("RedisSessionStore on a sharded Cluster", (it) => {
  it.scoped("every key of a session shares one slot, through rotations; its subject index lies elsewhere", () =>
    Effect.gen(function*() {
      const { admin, keyPrefix, slot, store } = yield* clusterStore()
      const first = yield* store.generate({ value: "v", subject: "ada" })
      let key = first
      for (let i = 0; i < 5; i++) key = (yield* store.rotate(key, (v) => v + i)).key
      const family = hex(first)
      const familyKeys = (yield* Effect.promise(() => keysUnder(admin, keyPrefix))).filter((k) => !k.includes("{u:"))
      // Six rows, the family's members, its group's family and expiry indexes.
      expect(familyKeys.filter((k) => k.includes("}r:"))).toHaveLength(6)
      expect(familyKeys).toContain(`${keyPrefix}{${family.slice(0, 2)}}m:${family}`)
      const slots = new Set(yield* Effect.forEach(familyKeys, slot))
      expect(slots.size).toBe(1)
      const subjectKey = (yield* Effect.promise(() => keysUnder(admin, keyPrefix))).find((k) => k.includes("{u:"))!
      expect(yield* slot(subjectKey)).not.toBe([...slots][0])
      expect((yield* store.get(key)).id).toBe(SessionKey.id(first))
      expect((yield* store.list("ada")).map((info) => info.id)).toEqual([SessionKey.id(first)])
    }))

  it.scoped("sessions spread over every master, and every master serves some", () =>
    Effect.gen(function*() {
      const { admin, keyPrefix, store } = yield* clusterStore()
      yield* Effect.forEach(Array.from({ length: 300 }), () => store.generate(), { concurrency: 32, discard: true })
      const perMaster = yield* Effect.forEach(admin.nodes("master"), (node) =>
        Effect.promise(() => keysUnder(node as unknown as Cluster, keyPrefix).then((keys) => keys.filter((k) => k.includes("}r:")).length)))
      expect(perMaster).toHaveLength(3)
      expect(perMaster.reduce((a, b) => a + b, 0)).toBe(300)
      for (const count of perMaster) expect(count).toBeGreaterThan(50) // about 100 each
    }))

  it.scoped("the subject index is checked when read: stale entries are dropped, never listed or revoked", () =>
    Effect.gen(function*() {
      const { admin, keyPrefix, store } = yield* clusterStore()
      const mine = yield* store.generate({ subject: "ada" })
      const theirs = yield* store.generate({ subject: "bob" })
      const adaKey = `${keyPrefix}{u:${createHash("sha256").update("ada").digest("hex")}}`
      expect(yield* Effect.promise(() => admin.hkeys(adaKey))).toEqual([hex(mine)])
      // Stale entries: bob's session, a family that never existed, and (after setSubject) ada's own moved session.
      yield* Effect.promise(() => admin.hset(adaKey, hex(theirs), "forged", "ab".repeat(32), "forged"))
      const moved = yield* store.generate({ subject: "ada" })
      yield* store.setSubject(moved, "carol")
      expect((yield* store.list("ada")).map((info) => info.id)).toEqual([SessionKey.id(mine)])
      expect(yield* Effect.promise(() => admin.hkeys(adaKey))).toEqual([hex(mine)])
      yield* Effect.promise(() => admin.hset(adaKey, hex(theirs), "forged"))
      expect(yield* store.revokeSubject("ada")).toBe(1)
      expect((yield* store.get(theirs)).subject).toBe("bob") // listed under ada by a stale entry: untouched
      expect((yield* store.list("carol")).map((info) => info.id)).toEqual([SessionKey.id(moved)])
      expect(yield* Effect.promise(() => admin.exists(adaKey))).toBe(0)
    }))

  it.scoped("all pages across shards in family order, the same order every time", () =>
    Effect.gen(function*() {
      const { store } = yield* clusterStore()
      const keys = yield* Effect.forEach(Array.from({ length: 1_200 }), () => store.generate(), { concurrency: 32 })
      const ids = (infos: Chunk.Chunk<SessionStore.SessionInfo>) => Chunk.toReadonlyArray(infos).map((info) => info.id)
      const first = ids(yield* Stream.runCollect(store.all))
      const second = ids(yield* Stream.runCollect(store.all))
      expect(first).toEqual(second)
      expect(new Set(first)).toEqual(new Set(keys.map(SessionKey.id)))
      const digests = first.map((id) => Buffer.from(id, "base64url"))
      for (let i = 1; i < digests.length; i++) expect(Buffer.compare(digests[i - 1]!, digests[i]!)).toBe(-1)
    }))
})

describe("instances on one Redis", () => {
  it.scoped("three instances run the background cleanup once per interval between them", () =>
    Effect.gen(function*() {
      const keyPrefix = uniquePrefix("lease")
      const admin = (yield* adminClient({})) as Redis
      yield* Effect.addFinalizer(() => Effect.ignore(Effect.tryPromise(() => deleteUnder(admin, keyPrefix))))
      const runs = () => Effect.map(Metric.value(Observability.cleanupRuns), (state) => state.count)
      const before = yield* runs()
      const stores = yield* Effect.all(
        [1, 2, 3].map(() => RedisSessionStore.make({ ...shared, keyPrefix, cleanupInterval: "1 minute" })),
        { concurrency: 3 }
      )
      const keys = yield* Effect.forEach(stores, (store) => store.generate({ expiry: "30 seconds" }))
      // Ten minutes in steps of 5 seconds, letting each wake-up's scripts run before the next step.
      for (let step = 0; step < 120; step++) {
        yield* TestClock.adjust("5 seconds")
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
      }
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 200)))
      const ran = (yield* runs()) - before
      // Each instance wakes every 48–72 s: on their own, 3 × 8–12 runs; shared, runs are ≥ 45 s apart.
      expect(ran).toBeGreaterThanOrEqual(5)
      expect(ran).toBeLessThanOrEqual(14)
      for (const key of keys) expect((yield* Effect.flip(stores[0]!.get(key)))._tag).toBe("NotFound")
    }))
})

describe("RedisSessionStore options", () => {
  it.scoped("bad options fail with InvalidConfig naming the option, before any connection is tried", () =>
    Effect.gen(function*() {
      // Nothing listens on 127.0.0.1:7099: a store that tried to connect would fail with SessionStoreError instead.
      const nowhere = ["127.0.0.1:7099"]
      const cases: ReadonlyArray<readonly [RedisSessionStore.Options, string]> = [
        [{ cluster: nowhere, pipelining: true }, "pipelining"],
        [{ port: 7099, keyPrefix: "app:{sessions}:" }, "keyPrefix"],
        [{ port: 7099, replicas: -1 }, "replicas"],
        [{ url: "http://127.0.0.1:7099" }, "url"],
        [{ url: "redis://127.0.0.1:7099", port: 7099 }, "url"],
        [{ cluster: [] }, "cluster"],
        [{ sentinels: ["127.0.0.1"] }, "sentinels"]
      ]
      for (const [options, option] of cases) {
        const error = yield* Effect.flip(RedisSessionStore.make({ ...options, connectTimeout: "200 millis" }))
        expect(error._tag).toBe("InvalidConfig")
        expect(error._tag === "InvalidConfig" && error.option).toBe(option)
      }
    }))
})

describe("RedisSessionStore through Sentinel", () => {
  it.live("finds the master through a Sentinel and keeps its sessions there", () =>
    Effect.gen(function*() {
      yield* RedisCluster.sentinel(7040, 7041, "sessions")
      const keyPrefix = uniquePrefix("sentinel")
      const store = yield* RedisSessionStore.make({ sentinels: ["127.0.0.1:7041"], sentinelName: "sessions", keyPrefix, cleanupInterval: 0 })
      const key = yield* store.generate({ value: "v", subject: "ada" })
      const { key: next } = yield* store.rotate(key, (v) => v + "!")
      expect((yield* store.get(next)).value).toBe("v!")
      expect((yield* store.list("ada")).map((info) => info.id)).toEqual([SessionKey.id(key)])
      const master = new Redis({ port: 7040, host: "127.0.0.1" })
      yield* Effect.addFinalizer(() => Effect.sync(() => master.disconnect()))
      expect((yield* Effect.promise(() => keysUnder(master, keyPrefix))).filter((k) => k.includes("}r:"))).toHaveLength(2)
    }).pipe(Effect.scoped), { timeout: 30_000 })
})

describe("rotation keys", () => {
  layer(Layer.empty)((it) => {
    it.effect("a rotation key falls in its family's slot group, a few hundred hashes at most on average", () =>
      Effect.sync(() => {
        const started = performance.now()
        for (let i = 0; i < 512; i++) {
          const family = SessionKey.hash(SessionKey.generate())
          expect(SessionKey.hash(RedisSessionStore.rotationKey(family))[0]).toBe(family[0])
        }
        const averageMs = (performance.now() - started) / 512
        console.log(`ROTATION KEY: ${averageMs.toFixed(3)} ms on average`)
        expect(averageMs).toBeLessThan(20)
      }))
  })
})
