/**
 * The PostgreSQL `Backend`: each primitive one of the statements of `pgStatements.ts`, run by a {@link Run} (the
 * owned pool's fast path, or any `PgClient`). On the owned pool, reads and compare-and-sets of different sessions
 * share statements ({@link lanes}, see pgBatch), except inside an app's transaction. Revocation runs its statement
 * again when a rotation committed under it (see `revokeFamily`), so no key made by a concurrent rotation survives.
 */
import { Effect, type Runtime } from "effect"
import { encode } from "./bytes.js"
import * as PgBatch from "./pgBatch.js"
import type { Statements } from "./pgStatements.js"
import type { Backend, InfoRow, Refusal, Row, StoredOwner } from "./storeModel.js"

/**
 * Runs one of the store's statements within the deadline (or within `timeoutMs`, where the runner honours it: the
 * owned pool) and returns its rows.
 */
export type Run = <A extends object>(
  statement: string,
  params: ReadonlyArray<unknown>,
  timeoutMs?: number
) => Effect.Effect<ReadonlyArray<A>, unknown>

/** Passes of a revocation at most: each further pass follows a rotation that committed under the previous one. */
const maxPasses = 8

interface InfoColumns {
  readonly id: Uint8Array
  readonly subject: string | null
  readonly audience: string | null
  readonly metadata: string | null
  readonly created_at: number
  readonly expires_at: number
  readonly last_seen_at: number
}

const info = (row: InfoColumns): InfoRow => ({
  id: row.id,
  subject: row.subject,
  audience: row.audience,
  metadata: row.metadata,
  createdAt: row.created_at,
  expiresAt: row.expires_at,
  lastSeenAt: row.last_seen_at
})

/** A family ended by `revokeSubject`: whether its current row was among the rows ended, and live. */
interface Ended {
  readonly family: Uint8Array
  readonly current: boolean
  readonly live: boolean
}

interface Outcome {
  readonly outcome: string
}

/** The outcome of a conditional write: `done` as the primitive names it; a row live but unchanged was raced. */
const outcomeOf = <Done extends string>(done: Done) => ([row]: ReadonlyArray<Outcome>) => {
  const outcome = row?.outcome ?? "missing"
  return outcome === "done" ? done : outcome === "live" ? "missing" : outcome as Refusal
}

const hex = (bytes: Uint8Array) => encode(bytes, "hex")

/** Ends every row of `family`; whether anything ended. Repeated while only rotated rows ended (a rotation raced). */
const revokeFamily = (q: Statements, run: Run, family: Uint8Array, subject: string | undefined) =>
  Effect.gen(function*() {
    let found = false
    for (let pass = 0, authorize = subject ?? null; pass < maxPasses; pass++, authorize = null) {
      const [row] = yield* run<{ ended: number; current: number }>(q.revokeFamily, [family, authorize])
      if (row === undefined || row.ended === 0) return found
      found = true
      if (row.current > 0) return found
    }
    return found
  })

/** Ends the subject's sessions; again for the families whose current row a concurrent rotation hid. */
const revokeSubject = (q: Statements, run: Run): Backend["revokeSubject"] => ({ audience, except, now, subject }) =>
  Effect.gen(function*() {
    const live = new Set<string>()
    let pending: Array<Uint8Array> | null = null
    for (let pass = 0; pass < maxPasses && (pass === 0 || pending!.length > 0); pass++) {
      const rows: ReadonlyArray<Ended> = yield* run<Ended>(
        q.revokeSubject,
        [subject, audience ?? null, except ?? null, now, pending]
      )
      for (const row of rows) if (row.live) live.add(hex(row.family))
      pending = rows.filter((row) => !row.current).map((row) => row.family)
    }
    return live.size
  })

/** A row as `find` and `findMany` read it. */
interface RowColumns {
  readonly id?: Uint8Array
  readonly value: string
  readonly expires_at: number
  readonly version: string
  readonly rotated: boolean
  readonly subject: string | null
  readonly audience: string | null
  readonly family: Uint8Array
}

const rowOf = (row: RowColumns): Row => ({
  value: row.value,
  expiresAt: row.expires_at,
  version: row.version,
  rotated: row.rotated,
  subject: row.subject,
  audience: row.audience,
  family: row.family
})

/** The row `id`, unless there is none or it ended. */
const findOne = (q: Statements, run: Run, id: Uint8Array, timeoutMs?: number) =>
  Effect.map(run<RowColumns>(q.find, [id], timeoutMs), ([row]) => row && rowOf(row))

const ownerParams = (owner: StoredOwner) => [owner.subject, owner.audience, owner.metadata]

/** What a compare-and-set takes. */
type CompareAndSet = Parameters<Backend["compareAndSet"]>[0]

/** One compare-and-set: its new version, or `undefined` when the row did not have the version (or was not live). */
const compareAndSetOne = (q: Statements, run: Run, write: CompareAndSet, timeoutMs?: number) => {
  const { expiresAt, id, now, owner, value, version } = write
  return Effect.map(
    run<{ version: string }>(
      owner === undefined ? q.compareAndSet : q.compareAndSetOwner,
      [id, version, value, expiresAt ?? null, now, ...(owner === undefined ? [] : ownerParams(owner))],
      timeoutMs
    ),
    ([row]) => row?.version
  )
}

/**
 * Many compare-and-sets (distinct ids) in one statement: each one's new version, `undefined` when refused, or
 * `busy` when its row was locked by another transaction (the write then runs alone).
 */
const compareAndSetMany = (q: Statements, run: Run, writes: ReadonlyArray<CompareAndSet>, timeoutMs: number) => {
  const column = <A>(f: (write: CompareAndSet) => A) => writes.map(f)
  return Effect.map(
    run<{ id: Uint8Array; version: string | null }>(q.compareAndSetMany, [
      column((w) => w.id),
      column((w) => w.version),
      column((w) => w.value),
      column((w) => w.expiresAt ?? null),
      column((w) => w.now),
      column((w) => w.owner !== undefined),
      column((w) => w.owner?.subject ?? null),
      column((w) => w.owner?.audience ?? null),
      column((w) => w.owner?.metadata ?? null)
    ], timeoutMs),
    (rows) => {
      const answered = new Map<string, string | typeof PgBatch.busy>(rows.map((row) => [hex(row.id), row.version ?? PgBatch.busy]))
      return writes.map((write) => answered.get(hex(write.id)))
    }
  )
}

/** The reads of many ids in one statement: each one's row, or `undefined`. */
const findMany = (q: Statements, run: Run, ids: ReadonlyArray<Uint8Array>, timeoutMs: number) =>
  Effect.map(run<RowColumns>(q.findMany, [ids], timeoutMs), (rows) => {
    const found = new Map(rows.map((row) => [hex(row.id!), rowOf(row)]))
    return ids.map((id) => found.get(hex(id)))
  })

/** What an upsert takes, and what it says. */
type Upsert = Parameters<Backend["upsert"]>[0]
type Upserted = "written" | Refusal

const upsertOne = (q: Statements, run: Run, { expiresAt, id, now, value }: Upsert, timeoutMs?: number) =>
  Effect.map(run<Outcome>(q.upsert, [id, value, expiresAt, now], timeoutMs), outcomeOf("written"))

/** Many upserts (distinct ids) in one statement: each one's outcome, or `busy` (its row was locked: run alone). */
const upsertMany = (q: Statements, run: Run, upserts: ReadonlyArray<Upsert>, timeoutMs: number) =>
  Effect.map(
    run<{ id: Uint8Array; outcome: string }>(q.upsertMany, [
      upserts.map((u) => u.id),
      upserts.map((u) => u.value),
      upserts.map((u) => u.expiresAt),
      upserts.map((u) => u.now)
    ], timeoutMs),
    (rows) => {
      const answered = new Map(rows.map((row) => [hex(row.id), row.outcome]))
      return upserts.map((u): Upserted | typeof PgBatch.busy => {
        const outcome = answered.get(hex(u.id))
        return outcome === "busy" ? PgBatch.busy : outcomeOf("written")([{ outcome: outcome ?? "missing" }])
      })
    }
  )

/** The owned pool's batching lanes of a backend. */
export interface Lanes {
  readonly find: PgBatch.Lane<Uint8Array, Row | undefined>
  readonly compareAndSet: PgBatch.Lane<CompareAndSet, string | undefined>
  readonly upsert: PgBatch.Lane<Upsert, Upserted>
}

/** How the lanes batch: statements in flight per lane, callers per statement, each caller's deadline. */
export interface LaneSettings {
  readonly readsInFlight: number
  readonly writesInFlight: number
  readonly maxBatch: number
  readonly timeout: number
}

/** Lanes for reads, compare-and-sets and upserts on `run` (the owned pool), their batches run by `runtime`. */
export const lanes = (q: Statements, run: Run, runtime: Runtime.Runtime<never>, settings: LaneSettings): Lanes => {
  const lane = <I, O>(kind: string, maxInFlight: number, ops: Pick<PgBatch.Options<I, O>, "key" | "one" | "many">) =>
    PgBatch.make({
      kind,
      maxInFlight,
      maxBatch: settings.maxBatch,
      timeout: settings.timeout,
      rolledBack: PgBatch.isServerError,
      ...ops
    }, runtime)
  const byId = (input: { readonly id: Uint8Array }) => hex(input.id)
  return {
    find: lane("read", settings.readsInFlight, {
      one: (id: Uint8Array, timeoutMs) => findOne(q, run, id, timeoutMs),
      many: (ids, timeoutMs) => findMany(q, run, ids, timeoutMs)
    }),
    compareAndSet: lane("write", settings.writesInFlight, {
      key: byId,
      one: (write: CompareAndSet, timeoutMs) => compareAndSetOne(q, run, write, timeoutMs),
      many: (writes, timeoutMs) => compareAndSetMany(q, run, writes, timeoutMs)
    }),
    upsert: lane("set", settings.writesInFlight, {
      key: byId,
      one: (upsert: Upsert, timeoutMs) => upsertOne(q, run, upsert, timeoutMs),
      many: (upserts, timeoutMs) => upsertMany(q, run, upserts, timeoutMs)
    })
  }
}

/**
 * The backend on `run`, with the statements `q`; reads, compare-and-sets and upserts through `batched` when given,
 * except inside an app's transaction (where they must join it, alone).
 */
export const make = (
  q: Statements,
  run: Run,
  inTransaction: Effect.Effect<boolean>,
  batched?: Lanes
): Backend<unknown> => {
  const claim = q.claimCleanup
  /** `alone`, or through `lane` when there is one, unless the caller runs inside a transaction. */
  const shared = <I, O>(alone: (input: I) => Effect.Effect<O, unknown>, lane: PgBatch.Lane<I, O> | undefined) =>
    lane === undefined
      ? alone
      : (input: I) => Effect.flatMap(inTransaction, (inside) => inside ? alone(input) : lane.submit(input))
  const find = shared((id: Uint8Array) => findOne(q, run, id), batched?.find)
  return {
    name: "postgres",
    inTransaction,
    enforcesDeadline: true,
    find: ({ id }) => find(id),
    insert: ({ expiresAt, id, now, owner, value }) =>
      Effect.asVoid(run(q.insert, [id, value, expiresAt, now, ...ownerParams(owner)])),
    upsert: shared((upsert: Upsert) => upsertOne(q, run, upsert), batched?.upsert),
    touch: ({ expiresAt, id, now }) => Effect.map(run<Outcome>(q.touch, [id, expiresAt, now]), outcomeOf("touched")),
    compareAndSet: shared((write: CompareAndSet) => compareAndSetOne(q, run, write), batched?.compareAndSet),
    rotate: ({ expiresAt, id, newId, now, owner, staleExpiresAt, value, version }) =>
      Effect.map(
        run<{ rotated: number }>(q.rotate, [
          id,
          version,
          newId,
          value,
          expiresAt,
          staleExpiresAt,
          now,
          owner !== undefined,
          ...(owner === undefined ? [null, null, null] : ownerParams(owner))
        ]),
        ([row]) => row?.rotated === 1
      ),
    setOwner: ({ id, now, owner }) => Effect.map(run<Outcome>(q.setOwner, [id, ...ownerParams(owner), now]), outcomeOf("set")),
    list: ({ audience, limit, now, subject }) =>
      Effect.map(run<InfoColumns>(q.list, [subject, audience ?? null, now, limit]), (rows) => rows.map(info)),
    page: ({ after, limit, now }) =>
      Effect.map(run<InfoColumns>(q.page, [after ?? null, now, limit]), (rows) => rows.map(info)),
    revoke: ({ family, subject }) => revokeFamily(q, run, family, subject),
    revokeSubject: revokeSubject(q, run),
    clear: ({ id }) =>
      Effect.gen(function*() {
        const [row] = yield* run<{ family: Uint8Array | null; rotated: boolean | null; current: number }>(q.clear, [id])
        // The session's current key was being rotated: its new key was not seen; end the family as a revocation does.
        if (row?.family && row.rotated === false && row.current === 0) yield* revokeFamily(q, run, row.family, undefined)
      }),
    deleteExpired: ({ limit, now }) =>
      Effect.map(run<{ deleted: number }>(q.deleteExpired, [now, limit]), ([row]) => row?.deleted ?? 0),
    claimCleanup: claim === undefined
      ? undefined
      : ({ now, spacing }) => Effect.map(run<{ runs: string }>(claim, [now, spacing]), (rows) => rows.length > 0)
  }
}
