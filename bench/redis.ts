/**
 * The Redis store, side by side on the shared Redis server (127.0.0.1:6379, or BENCH_REDIS_URL), each competitor
 * under a key prefix of its own that is deleted afterwards:
 *
 * - effect-session's RedisSessionStore (standalone), with its defaults and with `pipelining: true`;
 * - raw ioredis running the same Lua scripts with the same arguments (`EVALSHA`, one call per operation): the floor
 *   of the store's overhead; with the store's auto-pipelining setting (none) in a promise loop and called from
 *   Effect fibers through `Effect.promise` (what any Effect program pays to call the client by hand), and with
 *   auto-pipelining (what `pipelining: true` is measured against);
 * - connect-redis 9 on node-redis 5 through express-session's Store API (what Node users run today).
 *
 * get (hit) and set at concurrency 1 and 16, interleaved rounds; then a hot session: 64 writers incrementing one
 * session's counter, every acknowledged increment checked against the final counter.
 *
 *   npx tsx bench/redis.ts      (BENCH_SECONDS per cell, default 2; BENCH_ROUNDS, default 3; BENCH_REDIS_ROWS, default 10000)
 */
import { Context, Effect, Layer } from "effect"
import { Redis } from "ioredis"
import { RedisStore } from "connect-redis"
import { createClient } from "redis"
import { randomBytes } from "node:crypto"
import { promisify } from "node:util"
import { keys as layoutKeys } from "../dist/internal/redisLayout.js"
import * as Scripts from "../dist/internal/redisScripts.js"
import { RedisSessionStore, SessionKey, SessionStore } from "../dist/index.js"
import { keyOf, sampleValue } from "./lib/keys.js"
import { printTable } from "./lib/machine.js"
import { interleaved, measureEffect, measurePromise, type Stats } from "./lib/measure.js"

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const ROWS = Number(process.env.BENCH_REDIS_ROWS ?? 10_000)
const URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379"
const CONCURRENCY = [1, 16]
const OPS = ["get (hit)", "set"] as const
type Op = typeof OPS[number]
const WEEK = 7 * 24 * 3600 * 1000
const MARGIN = 3_600_000
const run = `${process.pid}-${randomBytes(4).toString("hex")}`
const PREFIX = { effect: `es-bench:${run}:effect:`, raw: `es-bench:${run}:raw:`, connect: `es-bench:${run}:cr:` }

const randomRow = () => 1 + Math.floor(Math.random() * ROWS)
const hexId = (key: string) => Buffer.from(SessionKey.hash(key as SessionKey.SessionKey)).toString("hex")

/** Deletes every key under a prefix (SCAN, bounded). */
const deletePrefix = async (client: Redis, prefix: string) => {
  let cursor = "0"
  for (let i = 0; i < 1_000_000; i++) {
    const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000)
    if (keys.length > 0) await client.del(...keys)
    cursor = next
    if (cursor === "0") return
  }
}

type Runner = (op: Op, concurrency: number) => Promise<Stats>

/** effect-session on a store built once; its sessions pre-filled through the store itself. */
const effectRunner = (store: SessionStore.Service): Runner => (op, concurrency) =>
  Effect.runPromise(measureEffect(concurrency, SECONDS, op === "get (hit)"
    ? () => store.get(keyOf(randomRow()))
    : (i) => store.set(keyOf(randomRow()), sampleValue(i))))

/**
 * Raw ioredis: the store's scripts, keys and arguments, nothing else; in a promise loop, or (`fromEffect`) each call
 * through `Effect.promise` in fibers, as an Effect program calling the client by hand would.
 */
const rawRunner = (client: Redis, fromEffect = false): Runner => {
  const k = layoutKeys(PREFIX.raw)
  let nonce = 0
  const header = (id: string, now: number) => [String(++nonce), k.base(id.slice(0, 2)), String(MARGIN), String(now)]
  const ops: Record<Op, (i: number) => Promise<unknown>> = {
    "get (hit)": () => client.evalsha(Scripts.find.sha, 1, k.row(hexId(keyOf(randomRow()))), String(++nonce)),
    set: (i) => {
      const id = hexId(keyOf(randomRow()))
      const now = Date.now()
      return client.evalsha(Scripts.upsert.sha, 1, k.row(id), ...header(id, now), id, sampleValue(i), String(now + WEEK))
    }
  }
  // Made once: a function made per call would cost this side a name (see bench/lib/measure.ts).
  let n = 0
  const next: Record<Op, () => Promise<unknown>> = { "get (hit)": () => ops["get (hit)"](n++), set: () => ops.set(n++) }
  return (op, concurrency) =>
    fromEffect
      ? Effect.runPromise(measureEffect(concurrency, SECONDS, () => Effect.promise(next[op])))
      : measurePromise(concurrency, SECONDS, ops[op])
}

const cookie = () => ({ originalMaxAge: WEEK, expires: new Date(Date.now() + WEEK), httpOnly: true, path: "/" })
const connectSession = (i: number) => ({ cookie: cookie(), ...JSON.parse(sampleValue(i)) })

/** connect-redis through express-session's Store API. */
const connectRunner = (store: RedisStore): Runner => {
  const get = promisify(store.get.bind(store)) as (sid: string) => Promise<unknown>
  const set = promisify(store.set.bind(store)) as (sid: string, s: unknown) => Promise<void>
  const ops: Record<Op, (i: number) => Promise<unknown>> = {
    "get (hit)": () => get(keyOf(randomRow())),
    set: (i) => set(keyOf(randomRow()), connectSession(i))
  }
  return (op, concurrency) => measurePromise(concurrency, SECONDS, ops[op])
}

/** 64 writers incrementing one session for BENCH_SECONDS; how many increments were acknowledged, and kept. */
const hotSession = async (store: SessionStore.Service, connect: RedisStore) => {
  const writers = 64
  const effectKey = SessionKey.generate()
  await Effect.runPromise(store.set(effectKey, "0"))
  // Every acknowledged increment is counted, the warm-up's too, and compared with the counter left at the end.
  let ourAcks = 0
  const ours = await Effect.runPromise(measureEffect(writers, SECONDS, () =>
    Effect.tap(store.modify(effectKey, (n) => String(Number(n) + 1)), () => void ourAcks++)))
  const kept = Number((await Effect.runPromise(store.get(effectKey))).value)
  const get = promisify(connect.get.bind(connect)) as (sid: string) => Promise<{ visits?: number } | null>
  const set = promisify(connect.set.bind(connect)) as (sid: string, s: unknown) => Promise<void>
  const sid = SessionKey.generate()
  await set(sid, { cookie: cookie(), visits: 0 })
  let theirAcks = 0
  const theirs = await measurePromise(writers, SECONDS, async () => {
    const current = await get(sid)
    await set(sid, { cookie: cookie(), visits: (current?.visits ?? 0) + 1 })
    theirAcks++
  })
  const final = (await get(sid))?.visits ?? 0
  const row = (competitor: string, stats: Stats, acknowledged: number, counter: number) => ({
    competitor,
    "writes/s": Math.round(stats.opsPerSec),
    "p50 ms": stats.p50Ms,
    "p99 ms": stats.p99Ms,
    errors: stats.errors,
    acknowledged,
    lost: acknowledged - counter
  })
  return [
    row("effect-session RedisSessionStore (modify)", ours, ourAcks, kept),
    row("connect-redis (get + set)", theirs, theirAcks, final)
  ]
}

export const runRedisBench = async () => {
  console.log(`\n## Redis, store level: ${ROWS} live sessions per competitor, ${ROUNDS} interleaved rounds of ${SECONDS}s per cell, ${URL}\n`)
  const admin = new Redis(URL)
  // The store's setting that matters for speed (no auto-pipelining, its default), and with auto-pipelining.
  const raw = new Redis(URL, { enableAutoPipelining: false })
  const rawPipelined = new Redis(URL, { enableAutoPipelining: true })
  const nodeRedis = createClient({ url: URL })
  await nodeRedis.connect()
  const connect = new RedisStore({ client: nodeRedis, prefix: PREFIX.connect })
  try {
    return await Effect.runPromise(Effect.gen(function*() {
      const context = yield* Layer.build(RedisSessionStore.layer({ url: URL, keyPrefix: PREFIX.effect, cleanupInterval: 0 }))
      const store = Context.get(context, SessionStore.SessionStore)
      // The same sessions, through a second connection that pipelines.
      const pipelined = yield* RedisSessionStore.make({ url: URL, keyPrefix: PREFIX.effect, cleanupInterval: 0, pipelining: true })
      const rawStore = yield* RedisSessionStore.make({ url: URL, keyPrefix: PREFIX.raw, cleanupInterval: 0 })
      yield* Effect.forEach(Array.from({ length: ROWS }, (_, i) => i + 1), (n) =>
        Effect.all([store.set(keyOf(n), sampleValue(n)), rawStore.set(keyOf(n), sampleValue(n)), Effect.promise(() =>
          promisify(connect.set.bind(connect))(keyOf(n), connectSession(n)))]), { concurrency: 64, discard: true })
      const runners: ReadonlyArray<readonly [string, Runner]> = [
        ["effect-session", effectRunner(store)],
        ["raw ioredis, same scripts", rawRunner(raw)],
        ["raw ioredis from Effect", rawRunner(raw, true)],
        ["effect-session, pipelining", effectRunner(pipelined)],
        ["raw ioredis, auto-pipelining", rawRunner(rawPipelined)],
        ["connect-redis", connectRunner(connect)]
      ]
      const results: Array<{ op: Op; concurrency: number; impl: string } & Stats> = []
      for (const concurrency of CONCURRENCY) {
        for (const op of OPS) {
          const stats = yield* Effect.promise(() => interleaved(ROUNDS, runners.map(([impl, r]) => [impl, () => r(op, concurrency)] as const)))
          for (const [impl, s] of stats) results.push({ op, concurrency, impl, ...s, latencies: [] })
        }
      }
      const find = (op: Op, c: number, impl: string) => results.find((r) => r.op === op && r.concurrency === c && r.impl === impl)!
      // Each of ours against the raw client configured as it is.
      const rawOf: Record<string, string> = {
        "effect-session": "raw ioredis, same scripts",
        "effect-session, pipelining": "raw ioredis, auto-pipelining"
      }
      const ratio = (r: typeof results[number], impl: string | undefined) =>
        impl === undefined ? "" : r.opsPerSec / find(r.op, r.concurrency, impl).opsPerSec
      const ours = (r: typeof results[number]) => rawOf[r.impl] !== undefined
      const table = results.map((r) => ({
        op: r.op,
        conc: r.concurrency,
        impl: r.impl,
        "ops/s": Math.round(r.opsPerSec),
        "p50 ms": r.p50Ms,
        "p99 ms": r.p99Ms,
        errors: r.errors,
        "ours/raw": ratio(r, rawOf[r.impl]),
        "ours/raw from Effect": ratio(r, r.impl === "effect-session" ? "raw ioredis from Effect" : undefined),
        "ours/connect-redis": ratio(r, ours(r) ? "connect-redis" : undefined)
      }))
      printTable(table)
      console.log(`\nA hot session on Redis: 64 concurrent writers on one session, ${SECONDS}s each\n`)
      const hot = yield* Effect.promise(() => hotSession(store, connect))
      printTable(hot)
      return { rows: ROWS, seconds: SECONDS, rounds: ROUNDS, table, hot }
    }).pipe(Effect.scoped))
  } finally {
    for (const prefix of Object.values(PREFIX)) await deletePrefix(admin, prefix)
    await nodeRedis.quit()
    raw.disconnect()
    rawPipelined.disconnect()
    admin.disconnect()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runRedisBench()
}
