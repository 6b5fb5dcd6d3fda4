/**
 * A worker process of the SQLite tests (`node --import tsx test/support/sqliteWorker.ts`), started once and given
 * jobs as JSON lines on stdin: `{ id, job, filename, tableName, at, input }`. Each job starts at the epoch
 * millisecond `at` (jobs sent to several workers start together) and is answered with a JSON line `{ id, result }`
 * or `{ id, error }`; a `lock` job also sends `{ id, event: "locked" }` once it holds the lock.
 *
 * - `lock`: holds the file's write lock (`BEGIN EXCLUSIVE` and a write) for `input.millis`;
 * - `increment`: `input.each` `modify` increments of each of `input.keys`, 8 at a time; reports those acknowledged;
 * - `rotate`: at `at + i × input.pace` ms, rotates key i twice in a row; reports the keys made and how far each got;
 * - `revoke`: at `at + i × input.pace + i mod 4` ms, revokes id i (as `input.subject`); then every session of
 *   `input.everyone`.
 */
import Database from "better-sqlite3"
import { Effect, Metric, Result } from "effect"
import { createInterface } from "node:readline"
import * as Observability from "../../src/internal/observability.js"
import * as SessionStore from "../../src/SessionStore.js"
import * as SqliteSessionStore from "../../src/SqliteSessionStore.js"

interface Job {
  readonly id: number
  readonly job: string
  readonly filename: string
  readonly tableName: string
  readonly at: number
  readonly input: any
}

const send = (message: object) => process.stdout.write(JSON.stringify(message) + "\n")
const until = (at: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now()))))
const increment = (n: string) => String(Number(n) + 1)

const jobs: Record<string, (job: Job) => Effect.Effect<unknown, unknown, SessionStore.SessionStore>> = {
  increment: ({ at, input }) =>
    Effect.gen(function*() {
      const store = yield* SessionStore.SessionStore
      const keys = input.keys as Array<string>
      const work = keys.flatMap((key) => Array.from({ length: input.each as number }, () => key))
      const before = (yield* Metric.value(Observability.writeConflicts)).count
      yield* until(at)
      const outcomes = yield* Effect.forEach(work, (key) => Effect.result(store.modify(key, increment)), { concurrency: 8 })
      const acknowledged = Object.fromEntries(keys.map((key) => [key, 0]))
      for (const [i, outcome] of outcomes.entries()) if (Result.isSuccess(outcome)) acknowledged[work[i]!]!++
      const conflicts = (yield* Metric.value(Observability.writeConflicts)).count - before
      return { acknowledged, failures: outcomes.filter(Result.isFailure).map((o) => o.failure._tag), conflicts }
    }),
  rotate: ({ at, input }) =>
    Effect.gen(function*() {
      const store = yield* SessionStore.SessionStore
      const chains = yield* Effect.forEach((input.keys as Array<string>).entries(), ([i, key]) =>
        Effect.gen(function*() {
          yield* until(at + i * input.pace)
          const made: Array<string> = []
          for (let current = key; made.length < 2;) {
            const rotated = yield* Effect.result(store.rotate(current, (v) => v))
            if (Result.isFailure(rotated)) return { made, stopped: rotated.failure._tag }
            made.push(current = rotated.success.key)
          }
          return { made, stopped: null }
        }), { concurrency: "unbounded" })
      return { made: chains.flatMap((c) => c.made), rotations: chains.map((c) => c.made.length), stopped: chains.map((c) => c.stopped) }
    }),
  revoke: ({ at, input }) =>
    Effect.gen(function*() {
      const store = yield* SessionStore.SessionStore
      const revoked = yield* Effect.forEach((input.ids as Array<string>).entries(), ([i, id]) =>
        Effect.andThen(until(at + i * input.pace + (i % 4)), Effect.result(store.revoke(id, { subject: input.subject }))), {
        concurrency: "unbounded"
      })
      const everyone = yield* store.revokeSubject(input.everyone)
      return { failures: revoked.filter(Result.isFailure).map((o) => o.failure._tag), everyone }
    })
}

const holdLock = async ({ at, filename, id, input }: Job) => {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())))
  const db = new Database(filename, { timeout: 5_000 })
  db.exec("BEGIN EXCLUSIVE")
  db.exec("CREATE TABLE IF NOT EXISTS lock_holder (at INTEGER)")
  db.prepare("INSERT INTO lock_holder VALUES (?)").run(Date.now())
  send({ id, event: "locked" })
  await new Promise((resolve) => setTimeout(resolve, input.millis))
  db.exec("COMMIT")
  db.close()
  return { released: true }
}

const run = (job: Job): Promise<unknown> =>
  job.job === "lock" ? holdLock(job) : jobs[job.job]!(job).pipe(
    Effect.provide(SqliteSessionStore.layer({
      filename: job.filename,
      tableName: job.tableName,
      cleanupInterval: 0,
      timeout: "20 seconds"
    })),
    Effect.scoped,
    Effect.runPromise
  )

createInterface({ input: process.stdin }).on("line", (line) => {
  const job = JSON.parse(line) as Job
  run(job).then(
    (result) => send({ id: job.id, result }),
    (error) => send({ id: job.id, error: String(error) })
  )
}).on("close", () => process.exit(0))
send({ ready: true })
