/**
 * Failover under load, on throwaway clusters of the test's own (test/support/cluster.ts; the shared server is never
 * touched): a primary and a streaming standby, the test app on `PgSessionStore.layerPool` with both hosts in one
 * URL (`target_session_attrs=read-write`, the standby by its IPv6 address), steady session traffic (increments,
 * reads, logins that rotate the key, revocations), then the primary stopped as a crash would (`-m immediate`) and
 * the standby promoted while the traffic goes on. A third variant has one address that moves to the new primary after
 * the promotion (a DNS name, a virtual IP or a managed service's endpoint: here a TCP proxy the test re-points).
 *
 * Checked and printed (`FAILOVER …` lines, quoted in docs/operations.md): every request answered within its bound,
 * the time from the promotion to the first 2xx, and what was acknowledged and lost: counter values answered 2xx
 * and missing on the new primary, revocations answered 2xx whose sessions came back. With a synchronous standby
 * nothing acknowledged may be lost; with an asynchronous one the loss is measured. Also measured: an UNLOGGED
 * session table (`durability: "unlogged"`) on the new primary.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted } from "effect"
import { PgSessionStore, SessionStore } from "../../src/index.js"
import * as Cluster from "../support/cluster.js"
import { httpServer, serve } from "../support/faultServer.js"
import * as Load from "../support/load.js"
import * as TcpProxy from "../support/tcpProxy.js"
import * as Traffic from "../support/traffic.js"

const timeout = 1_000
/** A request makes at most three store calls (load, the operation, save), each within the deadline. */
const bound = 3 * timeout + 1_500
const crashAfter = 2_500
const trafficAfterPromotion = 4_000

/** The URL of `hostList` (`host:port,…`), connections checked for read-write. */
const urlOf = (hostList: string) =>
  Redacted.make(`postgres://postgres@${hostList}/postgres?target_session_attrs=read-write&application_name=es-failover`)

/** Sessions in an UNLOGGED table on the primary (`durability: "unlogged"`), made before the failover. */
const unloggedSessions = (url: Redacted.Redacted, count: number) =>
  Effect.scoped(Effect.gen(function*() {
    const context = yield* Layer.build(PgSessionStore.layerPool({ url, tableName: "unlogged_sessions", durability: "unlogged", cleanupInterval: 0 }))
    const store = Context.get(context, SessionStore.SessionStore)
    return yield* Effect.forEach(Array.from({ length: count }), () => store.generate({ value: "kept?" }), { concurrency: 8 })
  }))

const scenario = (options: {
  readonly name: string
  readonly synchronous: boolean
  readonly ports: readonly [number, number]
  /** Replication through a proxy that delays every byte this long (a network's latency), if set. */
  readonly replicationDelayMs?: number
  /**
   * One address for the database that is moved to the new primary once it is promoted, instead of both hosts in the
   * URL (the primary by IPv4, the standby by IPv6: a bracketed host of the list).
   */
  readonly movingEndpoint?: boolean
}) =>
  Effect.gen(function*() {
    yield* Cluster.dropLeftovers
    const setupStarted = Date.now()
    const primary = yield* Cluster.primary(`${options.name}_a`, options.ports[0])
    const proxy = options.replicationDelayMs === undefined ? undefined : yield* TcpProxy.make({ host: "127.0.0.1", port: primary.port })
    proxy?.setMode({ _tag: "delay", ms: options.replicationDelayMs! })
    const standby = yield* Cluster.standby(primary, `${options.name}_b`, options.ports[1], {
      synchronous: options.synchronous,
      ...(proxy === undefined ? {} : { through: proxy.port })
    })
    const endpoint = options.movingEndpoint === true ? yield* TcpProxy.make({ host: "127.0.0.1", port: primary.port }) : undefined
    const url = urlOf(endpoint === undefined ? `127.0.0.1:${primary.port},[::1]:${standby.port}` : `127.0.0.1:${endpoint.port}`)
    const unlogged = yield* unloggedSessions(url, 100)
    const { base, lines } = yield* serve(PgSessionStore.layerPool({
      url,
      tableName: "sessions",
      timeout,
      connectTimeout: timeout,
      maxConnections: 4,
      cleanupInterval: 0
    }))
    const setupMs = Date.now() - setupStarted

    const t0 = Date.now()
    const events: { crashing?: number; crashed?: number; promoted?: number } = {}
    const failover = Effect.gen(function*() {
      yield* Effect.sleep(crashAfter)
      events.crashing = Date.now() - t0
      yield* Cluster.crash(primary)
      events.crashed = Date.now() - t0
      yield* Cluster.promote(standby)
      events.promoted = Date.now() - t0
      endpoint?.retarget({ host: "127.0.0.1", port: standby.port })
    })
    const [result] = yield* Effect.all([
      Effect.promise(() =>
        Traffic.run({
          base,
          writers: 8,
          revokers: 2,
          timeoutMs: 15_000,
          maxMillis: crashAfter + 20_000,
          stop: () => events.promoted !== undefined && Date.now() - t0 > events.promoted + trafficAfterPromotion
        })
      ),
      failover
    ], { concurrency: 2 })
    const { crashed, crashing, promoted } = events as Required<typeof events>

    // What the new primary holds, through the same server and pool.
    const finals = yield* Effect.promise(() =>
      Promise.all(result.writers.map((w) => w.cookie === undefined ? undefined : Traffic.peek(base, w.cookie)))
    )
    for (const [i, final] of finals.entries()) {
      if (final !== undefined) Traffic.observe(result.writers[i]!, final.visits, final.isNew)
    }
    const lost = result.writers.reduce((n, w) => n + w.lost.length + w.lostKeys.length, 0)
    const lostKeys = result.writers.flatMap((w) => w.lostKeys)
    // How far back before the crash acknowledged writes were lost (a lost key: from the login that made it).
    const lostSince = Math.min(...result.writers.flatMap((w) => w.lost.map((a) => a.at)), ...lostKeys)
    const revocations = yield* Effect.promise(() => Promise.all(result.revoked.map((cookie) => Traffic.peek(base, cookie))))
    const resurrected = revocations.filter((r) => r.status === 200 && !r.isNew).length
    const unloggedLeft = yield* Effect.promise(() =>
      Cluster.admin(standby, (c) => c.query("SELECT count(*)::int AS n FROM unlogged_sessions")).then((r) => r.rows[0].n as number)
    )

    const samples = result.samples
    const latencies = samples.map((s) => s.ms).sort((a, b) => a - b)
    const answers = samples.filter((s) => s.status === 200).map((s) => s.at + s.ms).sort((a, b) => a - b)
    const firstOk = answers.find((at) => at >= promoted)
    // The outage as clients saw it: the longest time without any 2xx answer, around the crash.
    const around = answers.filter((at) => at >= crashed - 1_000)
    const outage = Math.max(0, ...around.slice(1).map((at, i) => at - around[i]!))
    const figures = {
      requests: samples.length,
      statuses: Load.statusCounts(samples),
      byKind: Object.fromEntries(
        (["increment", "read", "login", "open", "list", "revoke"] as const).map((k) => [k, samples.filter((s) => s.kind === k).length])
      ),
      maxMs: latencies.at(-1),
      p99Ms: latencies[Math.floor(latencies.length * 0.99)],
      crashAtMs: crashed,
      promotionTookMs: promoted - crashed,
      firstOkAfterPromotionMs: firstOk === undefined ? undefined : firstOk - promoted,
      outageMs: outage,
      acknowledgedIncrements: result.writers.reduce((n, w) => n + w.acked.length + w.lost.length + w.lostWithKey, 0),
      // Acknowledged writes lost: increments, and logins (or first writes) whose key the new primary never heard of.
      acknowledgedLost: lost,
      usersLoggedOut: lostKeys.length,
      countsLostWithTheirKey: result.writers.reduce((n, w) => n + w.lostWithKey, 0),
      lossWindowMs: Number.isFinite(lostSince) ? crashed - lostSince : 0,
      revocationsAcknowledged: result.revoked.length,
      revocationsLost: resurrected,
      chainsAbandoned: result.writers.reduce((n, w) => n + w.abandoned, 0),
      unloggedSessions: `${unloggedLeft} of ${unlogged.length} left`,
      logLines: lines.length,
      setupMs
    }
    console.log(`FAILOVER ${options.synchronous ? "synchronous" : "asynchronous"} standby${
      endpoint === undefined ? "" : ", one moving endpoint"
    }: ${JSON.stringify(figures)}`)

    // Sanity, both variants: every request answered within its bound; the new primary serves again quickly.
    expect(samples.filter((s) => s.status <= 0)).toEqual([])
    expect(latencies.at(-1)!).toBeLessThanOrEqual(bound)
    expect(samples.filter((s) => s.at + s.ms < crashing).every((s) => s.status === 200)).toBe(true)
    expect(figures.firstOkAfterPromotionMs).toBeDefined()
    expect(figures.firstOkAfterPromotionMs!).toBeLessThanOrEqual(2_000)
    const tail = samples.filter((s) => s.at > promoted + 1_000)
    expect(tail.length).toBeGreaterThan(0)
    expect(tail.filter((s) => s.status === 200).length / tail.length).toBeGreaterThan(0.95)
    expect(figures.acknowledgedIncrements).toBeGreaterThan(100)
    expect(figures.revocationsAcknowledged).toBeGreaterThan(5)
    expect(lost).toBeLessThanOrEqual(figures.acknowledgedIncrements)
    // UNLOGGED tables are not replicated: the promoted standby has the table, empty.
    expect(unloggedLeft).toBe(0)
    return figures
  })

describe("failover: the primary crashes, the standby is promoted, traffic goes on", () => {
  const nothingLost = (figures: Effect.Effect.Success<ReturnType<typeof scenario>>) => {
    expect(figures.acknowledgedLost).toBe(0)
    expect(figures.usersLoggedOut).toBe(0)
    expect(figures.revocationsLost).toBe(0)
  }

  it.live("synchronous standby: 2xx again within 2 s of the promotion, no acknowledged write or revocation lost", () =>
    scenario({ name: "sync", synchronous: true, ports: [5441, 5442] }).pipe(
      Effect.map(nothingLost),
      Effect.provide(httpServer),
      Effect.scoped
    ), { timeout: 90_000 })

  it.live("synchronous standby behind one address moved after the promotion (DNS, VIP): the same", () =>
    scenario({ name: "dns", synchronous: true, ports: [5445, 5446], movingEndpoint: true }).pipe(
      Effect.map(nothingLost),
      Effect.provide(httpServer),
      Effect.scoped
    ), { timeout: 90_000 })

  it.live("asynchronous standby 100 ms behind: the same service, and the acknowledged writes it loses measured", () =>
    scenario({ name: "async", synchronous: false, ports: [5443, 5444], replicationDelayMs: 100 }).pipe(
      Effect.provide(httpServer),
      Effect.scoped
    ), { timeout: 90_000 })
})
