/**
 * Fault injection on the Redis store (`npm run test:faults`). The shared server is never stopped or reconfigured:
 * a black hole comes from a TCP proxy of the test's own in front of it; a restart and a Cluster failover use
 * servers the test starts (ports 7010–7026) and stops, also when it fails.
 *
 * Each test sends session writes (increments) from several clients in a loop and asserts: every request answered
 * within a bound, recovery without a restart of the app, and no acknowledged write lost (each client's counter
 * holds at least every increment answered 200) where Redis acknowledged it durably (an fsynced append-only file,
 * or `WAIT` for a replica). The figures are printed (`FAULT …` lines) and quoted in docs/operations.md.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Redis } from "ioredis"
import * as Fault from "../support/faultLoad.js"
import { shared } from "../support/redis.js"
import * as RedisCluster from "../support/redisCluster.js"
import * as TcpProxy from "../support/tcpProxy.js"

const timeout = 1_000
/** A request makes at most two store calls (load and save), each within the deadline. */
const bound = 2 * timeout + 1_500

describe("faults on the Redis store", () => {
  it.live("black hole, then healed: answers within the deadline, 2xx again within 10 s, no acknowledged write lost", () =>
    Effect.gen(function*() {
      const proxy = yield* TcpProxy.make(shared)
      const { base } = yield* Fault.serveRedis({ host: "127.0.0.1", port: proxy.port, timeout })
      const phases = { holeAt: 2_000, healAt: 6_000 }
      const result = yield* Fault.load(base, { clients: 8, maxMillis: phases.healAt + 9_000 }, [
        [phases.holeAt, () => proxy.setMode({ _tag: "blackhole" })],
        [phases.healAt, () => proxy.setMode({ _tag: "forward" })]
      ], (elapsed, samples) => {
        const healed = Fault.recovery(samples, phases.healAt)
        return healed !== undefined && elapsed > phases.healAt + healed + 3_000
      })
      const recoveredAfter = Fault.recovery(result.samples, phases.healAt)
      Fault.check("black hole 4 s (Redis)", result, yield* Fault.counters(base, result.cookies), bound, { recoveredAfterMs: recoveredAfter })
      const during = result.samples.filter((s) => s.at > phases.holeAt + 200 && s.at + s.ms < phases.healAt)
      expect(during.length).toBeGreaterThan(0)
      expect(during.every((s) => s.status === 503)).toBe(true)
      expect(recoveredAfter!).toBeLessThanOrEqual(10_000)
      const tail = result.samples.filter((s) => s.at > phases.healAt + recoveredAfter! + 1_000)
      expect(tail.filter((s) => s.status === 200).length / tail.length).toBeGreaterThan(0.95)
    }).pipe(Fault.withHttpServer), { timeout: 60_000 })

  it.live("Redis killed and restarted (fsynced append-only file): bounded answers, service resumes, nothing lost", () =>
    Effect.gen(function*() {
      const server = yield* RedisCluster.restartable(7010)
      const { base } = yield* Fault.serveRedis({ host: "127.0.0.1", port: server.port, timeout })
      const phases = { killAt: 1_500, startAt: 3_500 }
      let restartedAt = 0
      const result = yield* Fault.load(base, { clients: 8, maxMillis: 9_000 }, [
        [phases.killAt, () => void server.kill()],
        [phases.startAt, () => void server.start().then(() => void (restartedAt = Date.now()))]
      ])
      const recoveredAfter = Fault.recovery(result.samples, phases.startAt)
      Fault.check("kill -9 and restart (Redis, appendfsync always)", result, yield* Fault.counters(base, result.cookies), bound, {
        recoveredAfterMs: recoveredAfter,
        restarted: restartedAt > 0
      })
      expect(result.samples.some((s) => s.status === 503)).toBe(true)
      expect(recoveredAfter!).toBeLessThanOrEqual(3_000)
      const after = result.samples.filter((s) => s.at > phases.startAt + recoveredAfter! + 500)
      expect(after.length).toBeGreaterThan(0)
      expect(after.every((s) => s.status === 200)).toBe(true)
    }).pipe(Fault.withHttpServer), { timeout: 60_000 })

  for (const replicas of [1, 0]) {
    it.live(`a Cluster master killed under load, writes ${replicas === 1 ? "waiting for a replica (WAIT 1)" : "acknowledged by the master alone"}`, () =>
      Effect.gen(function*() {
        const ports = replicas === 1 ? [7021, 7022, 7023, 7024, 7025, 7026] : [7031, 7032, 7033, 7034, 7035, 7036]
        const cluster = yield* RedisCluster.cluster(ports, { nodeTimeout: 1_000 })
        const { base } = yield* Fault.serveRedis({ cluster: cluster.nodes, timeout, replicas })
        const victim = (yield* Effect.promise(cluster.masters))[0]!
        const killAt = 2_000
        const rejoinAt = killAt + 5_000
        let servedAgainAfter: number | undefined
        let rejoinedAt: number | undefined
        let rejoined: Promise<void> = Promise.resolve()
        const started = Date.now()
        const result = yield* Fault.load(base, { clients: 12, maxMillis: 15_000 }, [
          [killAt, () => {
            const killed = Date.now()
            void cluster.servers.find((s) => s.port === victim)!.kill().then(() =>
              RedisCluster.until("the victim's slots served again", () => slotsServed(cluster, victim), 20_000)
            ).then(() => void (servedAgainAfter = Date.now() - killed), () => {})
          }],
          // The failed master comes back, as a replica of the one that replaced it.
          [rejoinAt, () =>
            void (rejoined = cluster.restart(victim).then(() =>
              RedisCluster.until("the victim back as a replica in sync", () => inSync(victim), 15_000)
            ).then(() => void (rejoinedAt = Date.now() - started), () => {}))]
        ])
        yield* Effect.promise(() => rejoined)
        const counts = yield* Fault.counters(base, result.cookies)
        const lost = Fault.lostWrites(result, counts)
        const afterKill = result.samples.filter((s) => s.at >= killAt)
        const summary = {
          replicas,
          slotsServedAgainAfterMs: servedAgainAfter,
          failuresBetweenServedAgainAndRejoin: afterKill.filter((s) =>
            s.status !== 200 && s.at > killAt + (servedAgainAfter ?? 0) && s.at < rejoinAt).length,
          rejoinedAfterMs: rejoinedAt === undefined ? undefined : rejoinedAt - rejoinAt,
          failuresAfterRejoin: afterKill.filter((s) => s.status !== 200 && s.at > rejoinAt).length,
          failuresOnceInSync: rejoinedAt === undefined ? undefined : afterKill.filter((s) => s.status !== 200 && s.at > rejoinedAt!).length,
          lastFailureAfterKillMs: Math.max(0, ...afterKill.filter((s) => s.status !== 200).map((s) => s.at + s.ms - killAt)),
          acknowledgedWritesLost: lost
        }
        if (replicas === 1) {
          Fault.check("Cluster master killed, WAIT 1", result, counts, bound, summary)
        } else {
          // Without WAIT Redis may lose what its master acknowledged: measured and reported, not required.
          Fault.report("Cluster master killed, no WAIT", result, summary)
          expect(result.samples.filter((s) => s.status === 0)).toEqual([])
          expect(Math.max(...result.samples.map((s) => s.ms))).toBeLessThanOrEqual(bound)
        }
        expect(servedAgainAfter).toBeDefined()
        // Once the failed node is back as a replica in sync, every write is acknowledged again (with WAIT 1 too).
        expect(rejoinedAt).toBeDefined()
        const tail = result.samples.filter((s) => s.at > rejoinedAt! + 500)
        expect(tail.length).toBeGreaterThan(0)
        expect(tail.filter((s) => s.status === 200).length / tail.length).toBeGreaterThan(0.99)
      }).pipe(Fault.withHttpServer), { timeout: 90_000 })
  }
})

/** Whether the node on `port` is a replica whose link to its master is up. */
const inSync = async (port: number) => {
  const client = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on("error", () => {})
  try {
    const replication = await client.info("replication")
    return /role:slave/.test(replication) && /master_link_status:up/.test(replication)
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

/** Whether a surviving node reports the cluster healthy with the victim's slots on a live master. */
const slotsServed = async (cluster: RedisCluster.TestCluster, victim: number) => {
  const survivor = cluster.servers.find((s) => s.port !== victim && s.alive())!
  const client = new Redis({ port: survivor.port, host: "127.0.0.1", maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on("error", () => {})
  try {
    const info = await client.cluster("INFO")
    const slots = await client.cluster("SLOTS")
    return /cluster_state:ok/.test(info) && slots.every(([, , master]) => master?.[1] !== victim)
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}
