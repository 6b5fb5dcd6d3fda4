/**
 * Batching across sessions on the owned pool (internal/pgBatch.ts), on the real server: hundreds of concurrent
 * reads and compare-and-sets of different sessions share statements, and each caller still gets its own row's
 * outcome (hits, misses, conflicts, expired, rotated and ended rows mixed); a locked row never holds up the rest
 * of its batch; batches and revocations running together never deadlock; a deadline that passes while a batch is
 * on the wire fails its callers, and nothing acknowledged is lost.
 */
import { SqlClient } from "effect/sql"
import { expect, layer } from "@effect/vitest"
import { Context, Effect, Layer, Metric, Redacted, Result } from "effect"
import { TestClock } from "effect/testing"
import pg from "pg"
import { PgSessionStore, SessionKey, SessionStore } from "../src/index.js"
import * as PgBatch from "../src/internal/pgBatch.js"
import * as PgPool from "../src/internal/pgPool.js"
import { ServerOwnedPool, serverUrl, TestSchema, withSchema } from "./support/database.js"
import * as TcpProxy from "./support/tcpProxy.js"

/** Statements of more than one session sent so far by the lane `kind` (this worker's metric). */
const sharedStatements = (kind: "read" | "write" | "set") => {
  const state = Metric.withAttributes(PgBatch.batchSize, { kind }).valueUnsafe(Context.empty())
  const alone = state.buckets.find(([boundary]) => boundary === 1)?.[1] ?? 0
  return state.count - alone
}

/** A store on the client in context (the owned pool), on a fresh table, closed with the scope. */
const storeOn = (tableName: string, options: PgSessionStore.Options = {}) =>
  Effect.map(
    Layer.build(PgSessionStore.layer({ tableName, cleanupInterval: 0, ...options })),
    (context) => Context.get(context, SessionStore.SessionStore)
  )

const hashOf = (key: string) => Buffer.from(SessionKey.hash(key as SessionKey.SessionKey))

type Kind = "live" | "missing" | "expired" | "rotated" | "ended" | "owned"
const kinds: ReadonlyArray<Kind> = ["live", "missing", "expired", "rotated", "ended", "owned"]

/** Session `i` in the state its kind names, through the store (and SQL for what the store cannot do: expire). */
const prepare = (store: SessionStore.Service, sql: SqlClient.SqlClient, tableName: string, i: number) =>
  Effect.gen(function*() {
    const kind = kinds[i % kinds.length]!
    if (kind === "missing") return { i, kind, key: SessionKey.generate() }
    const key = yield* store.generate({ value: `v${i}`, ...(kind === "owned" ? { subject: `user-${i}` } : {}) })
    if (kind === "expired") {
      yield* sql.unsafe(`UPDATE ${tableName} SET expires_at = now() - interval '1 hour' WHERE id = $1`, [hashOf(key)])
    }
    if (kind === "rotated") yield* store.rotate(key, (v) => `${v} rotated`)
    if (kind === "ended") yield* store.clear(key)
    return { i, kind, key }
  })

layer(withSchema(ServerOwnedPool()), { timeout: 120_000 })("PgSessionStore on the owned pool: batching", (it) => {
  it.effect("hundreds of concurrent reads share statements, each caller gets its own row", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const tableName = (yield* TestSchema).table()
      const store = yield* storeOn(tableName)
      for (let round = 0; round < 3; round++) {
        const cases = yield* Effect.forEach(Array.from({ length: 300 }, (_, i) => i), (i) => prepare(store, sql, tableName, i), {
          concurrency: 16
        })
        const before = sharedStatements("read")
        const reads = yield* Effect.forEach(cases, (c) => Effect.result(store.get(c.key)), { concurrency: "unbounded" })
        expect(sharedStatements("read")).toBeGreaterThan(before)
        cases.forEach(({ i, kind }, n) => {
          const read = reads[n]!
          if (kind === "missing" || kind === "ended") expect(Result.getFailure(read).pipe((e) => e._tag === "Some" && e.value._tag)).toBe("NotFound")
          else if (kind === "expired") expect(Result.isFailure(read) && read.failure._tag).toBe("Expired")
          else {
            expect(Result.isSuccess(read)).toBe(true)
            const session = (read as Result.Success<SessionStore.StoredSession, never>).success
            expect(session.value).toBe(`v${i}`)
            expect(session.rotated).toBe(kind === "rotated")
            expect(session.subject).toBe(kind === "owned" ? `user-${i}` : null)
          }
        })
      }
    }).pipe(Effect.scoped, TestClock.withLive))

  it.effect("hundreds of concurrent writes share statements: each written, refused or retried on its own", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const tableName = (yield* TestSchema).table()
      const store = yield* storeOn(tableName)
      for (let round = 0; round < 3; round++) {
        const keys = yield* Effect.forEach(Array.from({ length: 300 }, (_, i) => i), (i) =>
          store.generate({ value: `v${i}` }), { concurrency: 16 })
        const loaded = yield* Effect.forEach(keys, (key) => store.get(key), { concurrency: 16 })
        // Behind the store's back (another process, say), after it read the rows: each kind's change.
        const kindOf = (i: number) => (["live", "conflict", "expired", "rotated", "ended", "owned"] as const)[i % 6]!
        yield* Effect.forEach(keys, (key, i): Effect.Effect<unknown, unknown> => {
          const id = hashOf(key)
          switch (kindOf(i)) {
            case "conflict":
              return sql.unsafe(`UPDATE ${tableName} SET value = value || '*', version = version + 1 WHERE id = $1`, [id])
            case "expired":
              return sql.unsafe(`UPDATE ${tableName} SET expires_at = now() - interval '1 hour' WHERE id = $1`, [id])
            case "rotated":
              return sql.unsafe(`UPDATE ${tableName} SET rotated = true WHERE id = $1`, [id])
            case "ended":
              return store.clear(key)
            default:
              return Effect.void
          }
        }, { concurrency: 16, discard: true })
        const before = sharedStatements("write")
        const writes = yield* Effect.forEach(keys, (key, i) =>
          Effect.result(store.modify(key, (v) => `${v}+`, {
            from: loaded[i]!,
            ...(kindOf(i) === "owned" ? { subject: `user-${i}` } : {})
          })), { concurrency: "unbounded" })
        expect(sharedStatements("write")).toBeGreaterThan(before)
        const expected = { expired: "Expired", rotated: "Rotated", ended: "NotFound" } as const
        for (const [i, write] of writes.entries()) {
          const kind = kindOf(i)
          if (kind === "expired" || kind === "rotated" || kind === "ended") {
            expect(Result.isFailure(write) && write.failure._tag).toBe(expected[kind])
            continue
          }
          // The conflict was seen: the write was applied to the value stored since, not to the one loaded.
          const value = kind === "conflict" ? `v${i}*+` : `v${i}+`
          expect(write).toEqual(Result.succeed(value))
          const stored = yield* store.get(keys[i]!)
          expect(stored.value).toBe(value)
          expect(stored.subject).toBe(kind === "owned" ? `user-${i}` : null)
        }
      }
    }).pipe(Effect.scoped, TestClock.withLive))

  it.effect("hundreds of concurrent sets share statements: each created, replaced or refused on its own", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const tableName = (yield* TestSchema).table()
      const store = yield* storeOn(tableName)
      for (let round = 0; round < 3; round++) {
        const cases = yield* Effect.forEach(Array.from({ length: 300 }, (_, i) => i), (i) => prepare(store, sql, tableName, i), {
          concurrency: 16
        })
        const before = sharedStatements("set")
        const sets = yield* Effect.forEach(cases, ({ i, key }) => Effect.result(store.set(key, `set ${i}`)), {
          concurrency: "unbounded"
        })
        expect(sharedStatements("set")).toBeGreaterThan(before)
        const refusal = { expired: "Expired", rotated: "Rotated", ended: "NotFound" } as const
        for (const [n, { i, key, kind }] of cases.entries()) {
          const set = sets[n]!
          if (kind === "expired" || kind === "rotated" || kind === "ended") {
            expect(Result.isFailure(set) && set.failure._tag).toBe(refusal[kind])
            continue
          }
          // A key the store did not know is created; a live one replaced (its owner kept).
          expect(Result.isSuccess(set)).toBe(true)
          const stored = yield* store.get(key)
          expect(stored.value).toBe(`set ${i}`)
          expect(stored.subject).toBe(kind === "owned" ? `user-${i}` : null)
        }
      }
    }).pipe(Effect.scoped, TestClock.withLive))

  it.effect("a row locked by another transaction holds up only its own write", () =>
    Effect.gen(function*() {
      const url = yield* serverUrl
      if (url === undefined) return
      const tableName = (yield* TestSchema).table()
      const store = yield* storeOn(tableName, { timeout: "1500 millis" })
      const keys = yield* Effect.forEach(Array.from({ length: 40 }, (_, i) => i), (i) => store.generate({ value: `v${i}` }))
      const loaded = yield* Effect.forEach(keys, (key) => store.get(key))
      const locker = new pg.Client({ connectionString: url })
      yield* Effect.acquireRelease(Effect.promise(() => locker.connect()), () => Effect.promise(() => locker.end()))
      yield* Effect.promise(() => locker.query("BEGIN"))
      yield* Effect.promise(() => locker.query(`SELECT 1 FROM ${tableName} WHERE id = $1 FOR UPDATE`, [hashOf(keys[0]!)]))
      const before = sharedStatements("write")
      const writes = yield* Effect.forEach(keys, (key, i) => Effect.result(store.modify(key, (v) => `${v}+`, { from: loaded[i]! })), {
        concurrency: "unbounded"
      })
      yield* Effect.promise(() => locker.query("ROLLBACK"))
      expect(sharedStatements("write")).toBeGreaterThan(before)
      // The locked row's caller gave up at its deadline; every other write went through.
      expect(Result.isFailure(writes[0]!) && writes[0].failure._tag).toBe("SessionStoreError")
      writes.slice(1).forEach((write, n) => expect(write).toEqual(Result.succeed(`v${n + 1}+`)))
      // Written and acknowledged to nobody (the abandoned statement may still commit once the lock is gone), or not
      // written: either way a later write applies to what is stored, and is what is stored once acknowledged.
      const later = yield* store.modify(keys[0]!, (v) => `${v}!`)
      expect(["v0!", "v0+!"]).toContain(later)
      expect((yield* store.get(keys[0]!)).value).toBe(later)
    }).pipe(Effect.scoped, TestClock.withLive))

  it.effect("batches, rotations and revocations at the same time: no deadlock, no failure, revoked sessions stay ended", () =>
    Effect.gen(function*() {
      const tableName = (yield* TestSchema).table()
      const store = yield* storeOn(tableName)
      for (let round = 0; round < 4; round++) {
        const subjects = Array.from({ length: 6 }, (_, s) => `round-${round}-user-${s}`)
        const keys = yield* Effect.forEach(Array.from({ length: 120 }, (_, i) => i), (i) =>
          store.generate({ value: `v${i}`, subject: subjects[i % 6]! }), { concurrency: 16 })
        const ids = yield* Effect.forEach(keys, (key) => Effect.map(store.get(key), (s) => s.id), { concurrency: 16 })
        const revoked = new Set(subjects.slice(0, 2))
        // Races the store resolves are fine (NotFound, Rotated); a failure of the store (a deadlock) is not.
        const raced = <A, E extends { readonly _tag: string }>(effect: Effect.Effect<A, E>) =>
          Effect.catchIf(Effect.asVoid(effect), (e) => e._tag === "NotFound" || e._tag === "Rotated", () => Effect.void)
        const operations = [
          ...keys.flatMap((key, i) => [
            raced(store.modify(key, (v) => `${v}+`)),
            raced(store.modify(key, (v) => `${v}-`)),
            ...(i % 5 === 0 ? [raced(store.rotate(key, (v) => `${v} rotated`))] : []),
            ...(i % 7 === 0 ? [raced(store.revoke(ids[i]!))] : [])
          ]),
          ...[...revoked].map((subject) => Effect.asVoid(store.revokeSubject(subject)))
        ]
        yield* Effect.all(operations, { concurrency: "unbounded", discard: true })
        for (const subject of revoked) expect(yield* store.list(subject)).toEqual([])
        for (const [i, key] of keys.entries()) {
          if (!revoked.has(subjects[i % 6]!)) continue
          expect(Result.isFailure(yield* Effect.result(store.get(key)))).toBe(true)
        }
      }
    }).pipe(Effect.scoped, TestClock.withLive))

  it.effect("a deadline passing while batches are on the wire: every caller fails, nothing acknowledged is lost", () =>
    Effect.gen(function*() {
      const url = yield* serverUrl
      if (url === undefined) return
      const target = new URL(url)
      const proxy = yield* TcpProxy.make({ host: target.hostname, port: Number(target.port || 5432) })
      target.hostname = "127.0.0.1"
      target.port = String(proxy.port)
      const tableName = (yield* TestSchema).table()
      const context = yield* Layer.build(Layer.provideMerge(
        PgSessionStore.layer({ tableName, timeout: 1000, cleanupInterval: 0 }),
        PgPool.layerClient({ url: Redacted.make(target.toString()), maxConnections: 4, connectTimeout: 1000 })
      ))
      const store = Context.get(context, SessionStore.SessionStore)
      const keys = yield* Effect.forEach(Array.from({ length: 60 }, (_, i) => i), (i) => store.generate({ value: `v${i}` }), {
        concurrency: 8
      })
      const loaded = yield* Effect.forEach(keys, (key) => store.get(key), { concurrency: 8 })
      proxy.setMode({ _tag: "blackhole" })
      const [reads, writes] = yield* Effect.all([
        Effect.forEach(keys, (key) => Effect.result(store.get(key)), { concurrency: "unbounded" }),
        Effect.forEach(keys, (key, i) => Effect.result(store.modify(key, (v) => `${v}+`, { from: loaded[i]! })), {
          concurrency: "unbounded"
        })
      ], { concurrency: "unbounded" })
      for (const result of [...reads, ...writes] as ReadonlyArray<Result.Result<unknown, { readonly _tag: string }>>) {
        expect(Result.isFailure(result) && result.failure._tag).toBe("SessionStoreError")
      }
      proxy.setMode({ _tag: "forward" })
      proxy.cut()
      // Unacknowledged writes may or may not have landed; a new write applies to whatever is stored.
      const after = yield* Effect.forEach(keys, (key) => Effect.retry(store.modify(key, (v) => `${v}!`), { times: 5 }), {
        concurrency: "unbounded"
      })
      after.forEach((value, i) => expect([`v${i}!`, `v${i}+!`]).toContain(value))
    }).pipe(Effect.scoped, TestClock.withLive))
})
