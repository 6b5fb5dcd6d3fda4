/**
 * The Effect 3 line's store workload for `bench/lines.ts`, in a process of its own (the Effect 4 line's twin,
 * v4/bench/storeWorker.ts, is derived from this file by v4/port/port.ts). `PgSessionStore.layerPool` on a table of
 * its own (argv[2]), pool of 10, built once per process; commands come over IPC:
 * prepare (create and fill the table), run (one measurement), profile (one measurement under the CPU profiler),
 * drop (the table), exit.
 */
import { Effect, ManagedRuntime, MetricLabel, Redacted } from "effect"
import pg from "pg"
import { PgSessionStore, SessionStore } from "../../dist/index.js"
import { batchSize } from "../../dist/internal/pgBatch.js"
import { schema } from "../../dist/internal/pgStatements.js"
import { keyOf, keySql, sampleValue } from "../lib/keys.js"
import { measureEffect } from "../lib/measure.js"
import { startProfile } from "./profiler.js"

const TABLE = process.argv[2]!
const POOL = 10
const url = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/test"
const embedded = process.env.BENCH_EMBEDDED === "1"

type Op = "get (hit)" | "set" | "modify"
type Command =
  | { readonly id: number; readonly cmd: "prepare"; readonly rows: number }
  | { readonly id: number; readonly cmd: "run"; readonly op: Op; readonly concurrency: number; readonly seconds: number }
  | { readonly id: number; readonly cmd: "profile"; readonly op: Op; readonly concurrency: number; readonly seconds: number; readonly file: string }
  | { readonly id: number; readonly cmd: "drop" }
  | { readonly id: number; readonly cmd: "exit" }

let rows = 100_000
const randomRow = () => 1 + Math.floor(Math.random() * rows)

const admin = async <A>(f: (client: pg.Client) => Promise<A>) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.end()
  }
}

const prepare = (n: number) =>
  admin(async (client) => {
    rows = n
    const ddl = schema(`"${TABLE}"`, TABLE, "full")
    await client.query(`DROP TABLE IF EXISTS "${TABLE}"`)
    await client.query(ddl.createTable)
    for (const [, index] of ddl.indexes) await client.query(index)
    await client.query(
      `INSERT INTO "${TABLE}" (id, value, expires_at, created_at)
       SELECT sha256(convert_to(${keySql("n")}, 'UTF8')), $1, now() + interval '1 day', now()
       FROM generate_series(1, ${n}) AS n`,
      [sampleValue(0)]
    )
    await client.query(`VACUUM ANALYZE "${TABLE}"`)
  })

let runtime: ManagedRuntime.ManagedRuntime<SessionStore.SessionStore, unknown> | undefined
const store = () =>
  runtime ??= ManagedRuntime.make(PgSessionStore.layerPool({
    url: Redacted.make(url),
    tableName: TABLE,
    durability: "full",
    cleanupInterval: 0,
    maxConnections: POOL,
    preparedStatements: !embedded,
    ...(embedded ? { pipelinedReads: 0 } : {})
  }))

/** The batch-size histogram of the owned pool's lane `kind` (its count of statements and sum of sessions). */
const lane = (kind: string) => Effect.sync(() => batchSize.unsafeValue([MetricLabel.make("kind", kind)]))
const LANE: Record<Op, string> = { "get (hit)": "read", set: "set", modify: "write" }

const measure = (op: Op, concurrency: number, seconds: number) =>
  store().runPromise(Effect.gen(function*() {
    const sessions = yield* SessionStore.SessionStore
    const ops: Record<Op, (i: number) => Effect.Effect<unknown, unknown>> = {
      "get (hit)": () => sessions.get(keyOf(randomRow())),
      set: (i) => sessions.set(keyOf(randomRow()), sampleValue(i)),
      modify: (i) => sessions.modify(keyOf(randomRow()), () => sampleValue(i))
    }
    const before = yield* lane(LANE[op])
    const stats = yield* measureEffect(concurrency, seconds, ops[op])
    const after = yield* lane(LANE[op])
    // Warm-up included: statements sent and the sessions they carried.
    return { ...stats, statements: after.count - before.count, batched: after.sum - before.sum }
  }))

const handle = async (command: Command): Promise<unknown> => {
  switch (command.cmd) {
    case "prepare":
      return prepare(command.rows)
    case "run":
      return measure(command.op, command.concurrency, command.seconds)
    case "profile": {
      await measure(command.op, command.concurrency, command.seconds / 4) // warm, outside the profile
      const stop = await startProfile()
      const stats = await measure(command.op, command.concurrency, command.seconds)
      await stop(command.file)
      return { ...stats, latencies: [] }
    }
    case "drop":
      await runtime?.dispose()
      runtime = undefined
      return admin((client) => client.query(`DROP TABLE IF EXISTS "${TABLE}"`)).then(() => undefined)
    case "exit":
      await runtime?.dispose()
      process.exit(0)
  }
}

process.on("message", (command: Command) => {
  handle(command).then(
    (result) => process.send!({ id: command.id, ok: true, result }),
    (error) => process.send!({ id: command.id, ok: false, error: String(error?.stack ?? error) })
  )
})
process.send!({ ready: process.versions.node })
