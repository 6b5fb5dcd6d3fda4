/**
 * Many app instances on one database, each a process of its own (test/support/instanceServer.ts: the test app on
 * `PgSessionStore.layerPool`), behind a round-robin balancer (test/support/balancer.ts), on one table of the shared
 * server (never stopped; the table and its lease are dropped afterwards). In order, on the same three instances:
 *
 * 1. the second and third instance start while the first serves traffic and while a migration holds the table (an
 *    upgrade's advisory lock and `ACCESS EXCLUSIVE` on the table, 4 s): they wait and start once it commits;
 * 2. the background cleanup (every second here) runs once per interval between the three, not once per instance;
 * 3. a rolling restart under load — each instance stopped (SIGTERM, or SIGKILL for the second) and started again on
 *    its port while traffic goes on — loses no acknowledged write or revocation.
 *
 * Every request is answered within its bound. The figures are printed (`INSTANCES …` lines, quoted in
 * docs/operations.md).
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { createInterface } from "node:readline"
import type pg from "pg"
import * as Balancer from "../support/balancer.js"
import * as Cluster from "../support/cluster.js"
import { defaultUrl } from "../support/database.js"
import * as Load from "../support/load.js"
import * as Traffic from "../support/traffic.js"

const url = process.env.DATABASE_URL || defaultUrl
const table = `instances_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
const ports = [3861, 3862, 3863] as const
/** The store's deadline in the instances is 1 s; a request makes at most three store calls. */
const bound = 3 * 1_000 + 1_500
const cleanupInterval = 1_000

/** A running instance: its port, when it listened, its cleanup runs so far, and how it ended. */
interface Instance {
  readonly port: number
  readonly process: ChildProcess
  readonly startedAt: number
  readonly listening: Promise<number>
  readonly exited: Promise<{ readonly code: number | null; readonly failed?: string }>
  runs: number
  output: string
}

const running = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL")
})

const startInstance = (port: number): Instance => {
  const child = spawn(process.execPath, ["--import", "tsx", "test/support/instanceServer.ts"], {
    env: {
      ...process.env,
      DATABASE_URL: url,
      TABLE: table,
      PORT: String(port),
      CLEANUP_INTERVAL: String(cleanupInterval),
      STARTUP_TIMEOUT: "30000"
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  running.add(child)
  let failed: string | undefined
  let listened: (at: number) => void = () => undefined
  const instance: Instance = {
    port,
    process: child,
    startedAt: Date.now(),
    listening: new Promise((resolve) => (listened = resolve)),
    exited: new Promise((resolve) =>
      child.once("exit", (code) => {
        running.delete(child)
        resolve(failed === undefined ? { code } : { code, failed })
      })
    ),
    runs: 0,
    output: ""
  }
  child.stderr!.on("data", (chunk) => (instance.output = (instance.output + chunk).slice(-4_000)))
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (!line.startsWith("{")) return void (instance.output = (instance.output + line + "\n").slice(-4_000)) // a log line
    const message = JSON.parse(line) as { event: string; runs?: number; message?: string }
    if (message.event === "listening") listened(Date.now())
    if (message.runs !== undefined) instance.runs = message.runs
    if (message.event === "failed") failed = message.message
  })
  return instance
}

/** Resolves when the instance listens; fails with its output if it exits first or takes longer than `within`. */
const listening = (instance: Instance, within = 60_000) =>
  Promise.race([
    instance.listening,
    instance.exited.then((exit) => {
      throw new Error(`instance on ${instance.port} exited (${exit.code}, ${exit.failed}): ${instance.output}`)
    }),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`instance on ${instance.port} did not listen: ${instance.output}`)), within)
    )
  ])

const stopInstance = async (instance: Instance, signal: "SIGTERM" | "SIGKILL") => {
  instance.process.kill(signal)
  return await Promise.race([
    instance.exited,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`instance on ${instance.port} did not stop`)), 15_000))
  ])
}

const admin = <A>(f: (client: pg.Client) => Promise<A>) => Cluster.adminAt(url, f)

const lease = `"${table}_cleanup_lease"`
const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

/** Traffic through the balancer until `stop()`, in the background. */
const traffic = (base: string, stop: () => boolean) =>
  Traffic.run({ base, writers: 6, revokers: 2, timeoutMs: bound + 5_000, maxMillis: 120_000, stop })

/** The checks every phase shares: each request answered within its bound; its figures. */
const answered = (samples: ReadonlyArray<Traffic.Sample>) => {
  const latencies = samples.map((s) => s.ms).sort((a, b) => a - b)
  expect(samples.filter((s) => s.status === 0)).toEqual([])
  expect(latencies.at(-1)!).toBeLessThanOrEqual(bound)
  return { requests: samples.length, statuses: Load.statusCounts(samples), maxMs: latencies.at(-1) }
}

/** What was acknowledged and lost, after a final read of every writer's session and every revoked session. */
const losses = async (base: string, result: Traffic.Result) => {
  const finals = await Promise.all(result.writers.map((w) => w.cookie === undefined ? undefined : Traffic.peek(base, w.cookie)))
  for (const [i, final] of finals.entries()) {
    if (final !== undefined && final.status === 200) Traffic.observe(result.writers[i]!, final.visits, final.isNew)
  }
  const revocations = await Promise.all(result.revoked.map((cookie) => Traffic.peek(base, cookie)))
  return {
    acknowledgedIncrements: result.writers.reduce((n, w) => n + w.acked.length + w.lost.length + w.lostWithKey, 0),
    acknowledgedLost: result.writers.reduce((n, w) => n + w.lost.length + w.lostKeys.length, 0),
    revocationsAcknowledged: result.revoked.length,
    revocationsLost: revocations.filter((r) => r.status === 200 && !r.isNew).length,
    finalReadsFailed: finals.filter((f) => f !== undefined && f.status !== 200).length
  }
}

describe("many instances on one database", () => {
  const instances: Array<Instance> = []
  let balancer: Balancer.Balancer | undefined

  afterAll(async () => {
    await Promise.all(instances.map((instance) => stopInstance(instance, "SIGTERM").catch(() => instance.process.kill("SIGKILL"))))
    await balancer?.close()
    await admin((client) => client.query(`DROP TABLE IF EXISTS "${table}", ${lease}`))
  }, 60_000)

  it.live("a second and third instance start while the first serves and a migration holds the table", () =>
    Effect.promise(async () => {
      balancer = await Balancer.start(ports)
      const first = startInstance(ports[0])
      instances.push(first)
      await listening(first)
      let stopped = false
      const load = traffic(balancer!.base, () => stopped)
      await sleep(1_000)
      const others: Array<Instance> = []
      // The migration: what an instance upgrading the table holds (its advisory lock) and an exclusive lock on it.
      const migration = admin(async (client) => {
        await client.query("BEGIN")
        await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`effect-session:"${table}"`])
        await client.query(`LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`)
        const lockedAt = Date.now()
        others.push(startInstance(ports[1]), startInstance(ports[2]))
        await sleep(4_000)
        await client.query("COMMIT")
        return { lockedAt, releasedAt: Date.now() }
      })
      const { lockedAt, releasedAt } = await migration
      const listened = await Promise.all(others.map((instance) => listening(instance)))
      instances.push(...others)
      await sleep(2_000)
      stopped = true
      const result = await load
      const figures = {
        ...answered(result.samples),
        migrationHeldMs: releasedAt - lockedAt,
        startupMs: listened.map((at, i) => at - others[i]!.startedAt),
        listenedAfterReleaseMs: listened.map((at) => at - releasedAt),
        okAfterRelease: result.samples.filter((s) => s.status === 200 && s.at > releasedAt - lockedAt).length,
        ...(await losses(balancer!.base, result)),
        balancer: balancer!.counts
      }
      console.log(`INSTANCES start-up during a migration: ${JSON.stringify(figures)}`)
      // They waited for the migration (and its lock) instead of failing, and serve.
      for (const at of listened) expect(at).toBeGreaterThanOrEqual(releasedAt)
      for (const instance of instances) {
        expect((await Load.send(`http://127.0.0.1:${instance.port}/plain`, { timeoutMs: 5_000 })).status).toBe(200)
      }
      expect(figures.acknowledgedLost).toBe(0)
      expect(figures.revocationsLost).toBe(0)
      expect(figures.acknowledgedIncrements).toBeGreaterThan(20)
    }), { timeout: 120_000 })

  it.live("the cleanup runs once per interval between the three instances", () =>
    Effect.promise(async () => {
      expect(instances).toHaveLength(3)
      await admin((client) =>
        client.query(`INSERT INTO "${table}" (id, value, expires_at, created_at)
          SELECT sha256(('expired ' || i)::bytea), '{}', now() - interval '1 hour', now() - interval '2 hours'
          FROM generate_series(1, 500) i`)
      )
      const claims = () => admin((client) => client.query(`SELECT runs::int AS runs FROM ${lease}`)).then((r) => r.rows[0].runs as number)
      const total = () => instances.reduce((n, instance) => n + instance.runs, 0)
      const [runsBefore, claimsBefore, started] = [total(), await claims(), Date.now()]
      await sleep(6_000)
      const [runsAfter, claimsAfter, elapsed] = [total(), await claims(), Date.now() - started]
      const left = await admin((client) => client.query(`SELECT count(*)::int AS n FROM "${table}" WHERE expires_at < now()`))
      const figures = {
        elapsedMs: elapsed,
        intervalMs: cleanupInterval,
        runs: runsAfter - runsBefore,
        perInstance: instances.map((instance) => instance.runs),
        leaseClaims: claimsAfter - claimsBefore,
        expiredLeft: left.rows[0].n
      }
      console.log(`INSTANCES cleanup: ${JSON.stringify(figures)}`)
      // Each instance wakes every 0.8–1.2 s: on their own, 3 runs per second between them; shared, ≥ 0.75 s apart.
      expect(figures.runs).toBeLessThanOrEqual(Math.floor(elapsed / (0.75 * cleanupInterval)) + 2)
      expect(figures.runs).toBeGreaterThanOrEqual(3)
      expect(figures.expiredLeft).toBe(0)
    }), { timeout: 60_000 })

  it.live("a rolling restart under load loses no acknowledged write", () =>
    Effect.promise(async () => {
      expect(instances).toHaveLength(3)
      let stopped = false
      const started = Date.now()
      const load = traffic(balancer!.base, () => stopped)
      await sleep(1_500)
      const restarts: Array<{ port: number; signal: string; downMs: number; failed: number }> = []
      for (const [i, signal] of (["SIGTERM", "SIGKILL", "SIGTERM"] as const).entries()) {
        const down = Date.now()
        const exit = await stopInstance(instances[i]!, signal)
        if (signal === "SIGTERM") expect(exit.code).toBe(0)
        const next = startInstance(ports[i]!)
        instances[i] = next
        await listening(next)
        // What the balancer could not forward while this instance stopped (answered 502: not acknowledged).
        const failed = balancer!.failures.filter((f) => f.at >= down && f.port === ports[i]).length
        restarts.push({ port: ports[i]!, signal, downMs: Date.now() - down, failed })
        await sleep(1_000)
      }
      await sleep(1_500)
      stopped = true
      const result = await load
      const figures = {
        ...answered(result.samples),
        durationMs: Date.now() - started,
        restarts,
        ...(await losses(balancer!.base, result)),
        balancer: balancer!.counts
      }
      console.log(`INSTANCES rolling restart: ${JSON.stringify(figures)}`)
      expect(figures.acknowledgedIncrements).toBeGreaterThan(50)
      expect(figures.acknowledgedLost).toBe(0)
      expect(figures.revocationsAcknowledged).toBeGreaterThan(3)
      expect(figures.revocationsLost).toBe(0)
      expect(figures.finalReadsFailed).toBe(0)
    }), { timeout: 120_000 })

})
