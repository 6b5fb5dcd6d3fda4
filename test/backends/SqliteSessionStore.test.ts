import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import { Config, Duration, Effect, Either, Layer } from "effect"
import { statSync, writeFileSync } from "node:fs"
import { SessionKey, SessionStore, SqliteSessionStore } from "../../src/index.js"
import { conformance } from "../support/conformance.js"
import * as Sqlite from "../support/sqlite.js"

conformance("SqliteSessionStore", Layer.empty, (options) =>
  SqliteSessionStore.layer({ ...options, filename: Sqlite.filename, tableName: Sqlite.table() }))

const build = (options: Partial<SqliteSessionStore.Options> = {}) =>
  SqliteSessionStore.make({ filename: Sqlite.filename, cleanupInterval: 0, ...options })

/** A connection of the test's own to the run's file, closed with the scope. */
const inspect = Effect.acquireRelease(
  Effect.sync(() => new Database(Sqlite.filename)),
  (db) => Effect.sync(() => db.close())
)

const names = (db: Database.Database, pragma: string, table: string) =>
  (db.prepare(`SELECT name FROM ${pragma}(?)`).all(table) as Array<{ name: string }>).map((row) => row.name).sort()

describe("SqliteSessionStore: SQLite only", () => {
  it.scoped("the table: every column and index, created once; the raw key is in no column; rows outlive the layer", () =>
    Effect.gen(function*() {
      const tableName = Sqlite.table()
      const keys = yield* Effect.scoped(Effect.flatMap(build({ tableName }), (s) =>
        Effect.forEach([1, 2, 3], (i) => s.generate({ value: `value ${i}`, subject: "u" }))))
      const db = yield* inspect
      expect(names(db, "pragma_table_info", tableName)).toEqual([
        "audience", "created_at", "ended", "expires_at", "family", "id", "last_seen_at", "metadata", "rotated", "subject",
        "value", "version"
      ])
      expect(names(db, "pragma_index_list", tableName).filter((name) => !name.startsWith("sqlite_autoindex"))).toEqual([
        `${tableName}_expires_at_idx`, `${tableName}_family_idx`, `${tableName}_subject_idx`
      ])
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal")
      const dump = (db.prepare(`SELECT quote(id) || quote(family) || value || coalesce(subject, '') AS row FROM "${tableName}"`)
        .all() as Array<{ row: string }>).map(({ row }) => row.toLowerCase()).join("\n")
      for (const key of keys) {
        expect(dump).not.toContain(key.toLowerCase())
        expect(dump).not.toContain(Buffer.from(key, "base64url").toString("hex"))
        expect(dump).toContain(Buffer.from(SessionKey.hash(key)).toString("hex"))
      }
      const again = yield* build({ tableName, createTable: false })
      expect((yield* again.get(keys[0]!)).value).toBe("value 1")
      expect(yield* again.list("u")).toHaveLength(3)
    }))

  it.scoped("createTable: false fails on a missing table; schemaSql's DDL, run by hand, is a complete table", () =>
    Effect.gen(function*() {
      const tableName = Sqlite.table()
      const missing = yield* Effect.flip(Effect.scoped(build({ tableName, createTable: false })))
      expect(missing).toMatchObject({ _tag: "InvalidConfig", option: "tableName" })
      expect(missing.message).toContain("does not exist")
      const ddl = yield* SqliteSessionStore.schemaSql({ tableName })
      expect(ddl).toContain(`CREATE TABLE IF NOT EXISTS "${tableName}"`)
      ;(yield* inspect).exec(ddl)
      const s = yield* build({ tableName, createTable: false })
      expect(yield* s.modify(yield* s.generate({ value: "a" }), (v) => v + "b")).toBe("ab")
    }))

  it.scoped("a table of an earlier version is upgraded in place at start-up, keeping its sessions", () =>
    Effect.gen(function*() {
      const tableName = Sqlite.table()
      const db = yield* inspect
      db.exec(`CREATE TABLE "${tableName}" (id BLOB PRIMARY KEY, family BLOB NOT NULL, value TEXT NOT NULL,
        expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL, version INTEGER NOT NULL DEFAULT 0)`)
      const key = SessionKey.generate()
      db.prepare(`INSERT INTO "${tableName}" (id, family, value, expires_at, created_at) VALUES (?, ?, 'kept', ?, 0)`)
        .run(SessionKey.hash(key), SessionKey.hash(key), 4102444800000)
      const refused = yield* Effect.flip(Effect.scoped(build({ tableName, createTable: false })))
      expect(refused).toMatchObject({ _tag: "InvalidConfig", option: "createTable" })
      expect(refused.message).toContain(`ALTER TABLE "${tableName}" ADD COLUMN rotated INTEGER NOT NULL DEFAULT 0`)
      const s = yield* build({ tableName })
      expect(yield* s.get(key)).toMatchObject({ value: "kept", rotated: false, subject: null, id: SessionKey.id(key) })
      const rotation = yield* s.rotate(key, (v) => v + "!", { subject: "user-1" })
      expect((yield* s.list("user-1")).map((info) => info.id)).toEqual([SessionKey.id(key)])
      expect((yield* s.get(rotation.key)).value).toBe("kept!")
      expect(names(db, "pragma_index_list", tableName)).toContain(`${tableName}_subject_idx`)
      yield* Effect.scoped(build({ tableName, createTable: false })) // now complete
    }))

  it.scoped("a table that is not a session table is InvalidConfig, and is left alone", () =>
    Effect.gen(function*() {
      const tableName = Sqlite.table()
      const db = yield* inspect
      db.exec(`CREATE TABLE "${tableName}" (id BLOB PRIMARY KEY, name TEXT)`)
      for (const createTable of [true, false]) {
        const error = yield* Effect.flip(Effect.scoped(build({ tableName, createTable })))
        expect(error).toMatchObject({ _tag: "InvalidConfig", option: "tableName" })
        expect(error.message).toContain("is not a session table")
      }
      expect(names(db, "pragma_table_info", tableName)).toEqual(["id", "name"])
    }))

  describe("bad options are InvalidConfig", () => {
    const notADatabase = Sqlite.path("not-a-database.db")
    writeFileSync(notADatabase, "this is not an SQLite file, and it is long enough to have a header".repeat(20))
    for (const [option, options] of [
      ["tableName", { tableName: "" }],
      ["tableName", { tableName: "1sessions" }],
      ["tableName", { tableName: "main.sessions" }],
      ["tableName", { tableName: `sessions"; DROP TABLE users; --` }],
      ["tableName", { tableName: "x".repeat(64) }],
      ["tableName", { tableName: "sqlite_sessions" }],
      ["filename", { filename: "" }],
      ["filename", { filename: ":memory:" }],
      ["filename", { filename: Sqlite.path("no/such/directory/sessions.db") }],
      ["filename", { filename: notADatabase }],
      ["synchronous", { synchronous: "off" as never }],
      ["timeout", { timeout: 0 }]
    ] as const) {
      // The title leaves the run's temporary directory out: the same test has the same title in every run.
      const shown = JSON.stringify(Object.values(options)[0]).replace(/effect-session-sqlite-[^/]+/, "…")
      it.effect(`${option}: ${shown.slice(0, 40)}`, () =>
        Effect.gen(function*() {
          const fresh: Partial<SqliteSessionStore.Options> = { tableName: Sqlite.table() }
          const error = yield* Effect.flip(Effect.scoped(build({ ...fresh, ...options })))
          expect(error).toMatchObject({ _tag: "InvalidConfig", option })
        }))
    }
  })

  it.scoped("synchronous full and normal both serve; layerConfig reads the options through Config", () =>
    Effect.gen(function*() {
      for (const synchronous of ["full", "normal"] as const) {
        const s = yield* build({ tableName: Sqlite.table(), synchronous })
        expect((yield* s.get(yield* s.generate({ value: synchronous }))).value).toBe(synchronous)
      }
      const value = yield* Effect.gen(function*() {
        const s = yield* SessionStore.SessionStore
        return yield* s.get(yield* s.generate({ value: "configured", expiry: "1 minute" }))
      }).pipe(Effect.provide(SqliteSessionStore.layerConfig({
        filename: Config.succeed(Sqlite.filename),
        tableName: Config.succeed(Sqlite.table())
      })))
      expect(value.value).toBe("configured")
      expect(Duration.toMillis(value.expiresIn)).toBe(60_000)
    }))

  it.scopedLive("the WAL is checkpointed into the file by a thread of its own", () =>
    Effect.gen(function*() {
      const filename = Sqlite.path("checkpointed.db")
      const s = yield* build({ filename })
      const before = statSync(filename).size
      yield* Effect.forEach(Array.from({ length: 500 }), (_, i) => s.generate({ value: `value ${i}`.padEnd(500, ".") }))
      let after = statSync(filename).size
      for (let i = 0; i < 100 && after === before; i++) {
        yield* Effect.sleep("20 millis")
        after = statSync(filename).size
      }
      expect(after).toBeGreaterThan(before + 250_000)
    }))

  it.scoped("rotation is atomic: when the new row cannot be written, the old session is exactly as it was", () =>
    Effect.gen(function*() {
      const tableName = Sqlite.table()
      const s = yield* build({ tableName })
      const key = yield* s.generate({ value: "before", expiry: "1 minute" })
      ;(yield* inspect).exec(`CREATE TRIGGER "${tableName}_poison" BEFORE INSERT ON "${tableName}"
        WHEN NEW.value = 'poison' BEGIN SELECT RAISE(ABORT, 'injected failure'); END`)
      const error = yield* Effect.flip(s.rotate(key, () => "poison", { staleTimeout: "3 seconds" }))
      expect(error).toMatchObject({ _tag: "SessionStoreError", operation: "rotate" })
      expect(yield* s.get(key)).toMatchObject({ value: "before", rotated: false })
      expect(Duration.toMillis((yield* s.get(key)).expiresIn)).toBe(60_000)
      expect(yield* s.modify(key, (v) => v + "!")).toBe("before!")
    }))
})

/** `effect`'s outcome and how long it took, in milliseconds of real time. */
const timed = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.suspend(() => {
    const started = performance.now()
    return Effect.map(Effect.either(effect), (outcome) => ({ outcome, ms: performance.now() - started }))
  })

const increment = (n: string) => String(Number(n) + 1)

describe("SqliteSessionStore: deadlines under a lock, several processes on one file", () => {
  // Started once, together: a worker process takes a few seconds to start on a busy machine.
  const workers = [Sqlite.worker(), Sqlite.worker(), Sqlite.worker()]
  beforeAll(() => Promise.all(workers.map((worker) => worker.ready)), 120_000)
  afterAll(() => workers.forEach((worker) => worker.stop()))
  const [first, second, third] = workers as [Sqlite.Worker, Sqlite.Worker, Sqlite.Worker]

  it.scopedLive("another process holds the write lock for 2 s: every write fails at its 100 ms deadline, reads go on, the loop never stalls", () =>
    Effect.gen(function*() {
      const tableName = Sqlite.table()
      const s = yield* build({ tableName, timeout: 100 })
      /** Every kind of write, on a session of its own (`key`) and another of the same subject (`spare`). */
      const writesOn = (key: SessionKey.SessionKey, spare: SessionKey.SessionKey): Record<string, Effect.Effect<unknown, { readonly _tag: string }>> => ({
        generate: s.generate(),
        set: s.set(key, "x"),
        touch: s.touch(key),
        modify: s.modify(key, (v) => v + "!"),
        setSubject: s.setSubject(key, "u"),
        rotate: s.rotate(key, (v) => v),
        clear: s.clear(spare),
        revoke: s.revoke(SessionKey.id(key)),
        revokeSubject: s.revokeSubject("nobody"),
        deleteExpired: s.deleteExpired
      })
      const fresh = Effect.all([s.generate({ value: "v", subject: "u" }), s.generate({ value: "w", subject: "u" })])
      // Each path once before the lock: a path's first run compiles code, which is not what this test measures.
      const succeeded = (writes: ReturnType<typeof writesOn>) =>
        Effect.forEach(Object.entries(writes), ([name, write]) =>
          Effect.map(Effect.either(write), (outcome) => expect([name, Either.isRight(outcome)]).toEqual([name, true])))
      yield* succeeded(writesOn(...yield* fresh))
      const [key, spare] = yield* fresh
      const writes = writesOn(key, spare)
      const lock = first.run("lock", tableName, { millis: 2_000 })
      yield* Effect.promise(() => lock.event("locked"))
      const lag = Sqlite.loopLag()
      const locked = performance.now()
      const failed: Array<number> = []
      // Rounds start in the first 1.2 s of the 2 s lock, so that even a slow round ends while it is held.
      for (let round = 0; round < 20 && performance.now() - locked < 1_200; round++) {
        const [outcomes, read, listed] = yield* Effect.all([
          Effect.forEach(Object.values(writes), timed, { concurrency: "unbounded" }),
          s.get(key),
          s.list("u")
        ], { concurrency: "unbounded" })
        for (const { ms, outcome } of outcomes) {
          expect(Either.isLeft(outcome) && outcome.left._tag).toBe("SessionStoreError")
          failed.push(ms)
        }
        expect(read.value).toBe("v") // WAL: readers never wait for the writer
        expect(listed.length).toBeGreaterThanOrEqual(2)
      }
      const { p99, samples, worst } = lag.stop()
      const [fastest, slowest] = [Math.min(...failed), Math.max(...failed)]
      console.log(`SQLITE LOCK: ${failed.length} writes failed in ${fastest.toFixed(0)}–${slowest.toFixed(0)} ms ` +
        `(deadline 100 ms); event-loop lag over ${samples} timers: worst ${worst.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`)
      expect(failed.length).toBeGreaterThanOrEqual(Object.keys(writes).length * 5)
      expect(fastest).toBeGreaterThanOrEqual(95)
      expect(slowest).toBeLessThan(600) // the deadline, and a loaded machine's timer delays

      // Nothing waits inside the engine: no timer is ever held up as long as a deadline. A busy timeout would hold
      // the loop for the whole lock (2 s), or, as short as the deadline, for a deadline per write of a round (1 s).
      // What lag remains is the machine's (an idle loop here is late by up to 8 ms, a loaded one by a few hundred).
      expect(worst).toBeLessThan(400)
      yield* Effect.promise(() => lock.result)
      yield* succeeded(writes) // refused under the lock, they changed nothing: they all go through now
    }))

  it.scopedLive("a lock shorter than the deadline: writes wait for it on timers, then succeed", () =>
    Effect.gen(function*() {
      const tableName = Sqlite.table()
      const s = yield* build({ tableName, timeout: 3_000 })
      const keys = yield* Effect.forEach(Array.from({ length: 20 }), () => s.generate({ value: "0" }))
      const lock = first.run("lock", tableName, { millis: 400 })
      yield* Effect.promise(() => lock.event("locked"))
      const lag = Sqlite.loopLag()
      const results = yield* Effect.forEach(keys, (key) => timed(s.modify(key, increment)), { concurrency: "unbounded" })
      const { worst } = lag.stop()
      for (const { outcome } of results) expect(Either.getOrThrow(outcome)).toBe("1")
      const waited = results.map((r) => r.ms)
      expect(Math.min(...waited)).toBeGreaterThan(200) // they did wait for the lock
      expect(Math.max(...waited)).toBeLessThan(1_500)
      expect(worst).toBeLessThan(400) // a busy timeout would hold the loop for the whole 400 ms lock per write
      yield* Effect.promise(() => lock.result)
    }))

  it.scopedLive("four processes incrementing the same sessions at once lose no acknowledged increment", () =>
    Effect.gen(function*() {
      const tableName = Sqlite.table()
      const s = yield* build({ tableName, timeout: "20 seconds" })
      const keys = yield* Effect.forEach([1, 2, 3, 4], () => s.generate({ value: "0" }))
      const each = 50
      const at = Date.now() + 300
      const running = workers.map((worker) => worker.run("increment", tableName, { keys, each }, at))
      yield* Effect.sleep(Math.max(0, at - Date.now()))
      const ours = yield* Effect.forEach(keys.flatMap((key) => Array.from({ length: each }, () => key)), (key) =>
        s.modify(key, increment), { concurrency: 8 })
      const results = yield* Effect.promise(() => Promise.all(running.map((job) => job.result)))
      for (const result of results) expect(result.failures).toEqual([])
      for (const key of keys) {
        const acknowledged = each + results.reduce((sum, result) => sum + result.acknowledged[key], 0)
        expect(acknowledged).toBe(4 * each)
        expect(Number((yield* s.get(key)).value)).toBe(acknowledged)
      }
      expect(ours).toHaveLength(4 * each)
      console.log(`SQLITE PROCESSES: 4 × ${4 * each} increments; compare-and-set conflicts retried in the workers: ${
        results.map((result) => result.conflicts).join(", ")}`)
    }))

  it.scopedLive("revocations in one process racing rotations in another: no key survives, every session is counted", () =>
    Effect.gen(function*() {
      const tableName = Sqlite.table()
      const s = yield* build({ tableName })
      const revoked = yield* Effect.forEach(Array.from({ length: 80 }), () => s.generate({ value: "v", subject: "u" }))
      const everyone = yield* Effect.forEach(Array.from({ length: 20 }), () => s.generate({ value: "v", subject: "w" }))
      const at = Date.now() + 300
      const pace = 4
      const rotations = second.run("rotate", tableName, { keys: [...revoked, ...everyone], pace }, at)
      const revocations = third.run("revoke", tableName, { ids: revoked.map(SessionKey.id), subject: "u", everyone: "w", pace }, at)
      const [rotated, ended] = yield* Effect.promise(() => Promise.all([rotations.result, revocations.result]))
      expect(ended.failures).toEqual([]) // each session existed, under one id, whatever its key
      expect(ended.everyone).toBe(everyone.length)
      for (const key of [...revoked, ...everyone, ...rotated.made]) {
        expect((yield* Effect.flip(s.get(key)))._tag).toBe("NotFound")
      }
      expect(yield* s.list("u")).toEqual([])
      expect(yield* s.list("w")).toEqual([])
      for (const stopped of rotated.stopped) expect([null, "NotFound"]).toContain(stopped)
      const before = [0, 1, 2].map((n) => rotated.rotations.slice(0, revoked.length).filter((r: number) => r === n).length)
      console.log(`SQLITE RACE: of ${revoked.length} sessions, rotated 0, 1, 2 times before their revocation: ${before.join(", ")}`)
    }))
})
