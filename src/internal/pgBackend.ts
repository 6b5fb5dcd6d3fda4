/**
 * The PostgreSQL `Backend`: each primitive one of the statements of `pgStatements.ts`, run by a {@link Run} (the
 * owned pool's fast path, or any `PgClient`). Revocation runs its statement again when a rotation committed under
 * it (see `revokeFamily`), so no key made by a concurrent rotation survives.
 */
import { Effect } from "effect"
import type { Statements } from "./pgStatements.js"
import type { Backend, InfoRow, Refusal, StoredOwner } from "./storeModel.js"

/** Runs one of the store's statements within the deadline and returns its rows. */
export type Run = <A extends object>(statement: string, params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<A>, unknown>

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

const hex = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")

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

/** The row `id`, unless there is none or it ended. */
const find = (q: Statements, run: Run): Backend["find"] => ({ id }) =>
  Effect.map(
    run<{
      value: string
      expires_at: number
      version: string
      rotated: boolean
      subject: string | null
      audience: string | null
      family: Uint8Array
    }>(q.find, [id]),
    ([row]) =>
      row && {
        value: row.value,
        expiresAt: row.expires_at,
        version: row.version,
        rotated: row.rotated,
        subject: row.subject,
        audience: row.audience,
        family: row.family
      }
  )

const ownerParams = (owner: StoredOwner) => [owner.subject, owner.audience, owner.metadata]

/** The backend on `run`, with the statements `q`. */
export const make = (
  q: Statements,
  run: Run,
  inTransaction: Effect.Effect<boolean>
): Backend<unknown> => {

  return {
    name: "postgres",
    inTransaction,
    enforcesDeadline: true,
    find: find(q, run),
    insert: ({ expiresAt, id, now, owner, value }) =>
      Effect.asVoid(run(q.insert, [id, value, expiresAt, now, ...ownerParams(owner)])),
    upsert: ({ expiresAt, id, now, value }) => Effect.map(run<Outcome>(q.upsert, [id, value, expiresAt, now]), outcomeOf("written")),
    touch: ({ expiresAt, id, now }) => Effect.map(run<Outcome>(q.touch, [id, expiresAt, now]), outcomeOf("touched")),
    compareAndSet: ({ expiresAt, id, now, owner, value, version }) =>
      Effect.map(
        run<{ version: string }>(
          owner === undefined ? q.compareAndSet : q.compareAndSetOwner,
          [id, version, value, expiresAt ?? null, now, ...(owner === undefined ? [] : ownerParams(owner))]
        ),
        ([row]) => row?.version
      ),
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
      Effect.map(run<{ deleted: number }>(q.deleteExpired, [now, limit]), ([row]) => row?.deleted ?? 0)
  }
}
