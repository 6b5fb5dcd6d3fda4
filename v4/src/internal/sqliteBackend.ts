/**
 * The SQLite `Backend`: each primitive one statement of `sqliteStatements.ts`, or a few in one `BEGIN IMMEDIATE`
 * transaction, run in one synchronous step (so atomic within this process too) by a `Run`, which tries it again on
 * timers while another process holds the write lock. Between processes on one file, SQLite's locks do the rest: a
 * compare-and-set is one `UPDATE … WHERE version = ?`; a rotation marks the old row and inserts the new one under
 * the write lock; a revocation reads and ends a whole family under it, so a rotation in another process either
 * committed before (its new key is ended too) or finds the old row ended (and rotates nothing).
 */
import type { Database, Statement } from "./sqliteDriver.js"
import type { Run } from "./sqliteRun.js"
import type { Statements } from "./sqliteStatements.js"
import type { Backend, InfoRow, Refusal, Row, StoredOwner } from "./storeModel.js"

interface Found {
  readonly value: string
  readonly expires_at: number
  readonly version: number
  readonly rotated: number
  readonly subject: string | null
  readonly audience: string | null
  readonly family: Uint8Array
}

interface State {
  readonly ended: number
  readonly rotated: number
  readonly expires_at: number
}

const row = (found: Found): Row => ({
  value: found.value,
  expiresAt: found.expires_at,
  version: String(found.version),
  rotated: found.rotated === 1,
  subject: found.subject,
  audience: found.audience,
  family: found.family
})

/** Why a conditional write left the row in `state` alone at `now` (within its transaction it was not writable). */
const refusal = (state: State | undefined, now: number): Refusal =>
  state === undefined || state.ended === 1
    ? "missing"
    : state.rotated === 1
    ? "rotated"
    : now > state.expires_at
    ? "expired"
    : "missing"

type Prepared = Record<keyof Statements, Statement>

const owner = (o: StoredOwner) => [o.subject, o.audience, o.metadata] as const

/** The primitives that run as one `BEGIN IMMEDIATE` transaction each: what they read, they read under the lock. */
const transactions = (db: Database, s: Prepared) => ({
  /** A conditional write of the row `id` and, when it changed nothing, the reason. */
  conditional: db.transaction((id: Uint8Array, now: number, write: () => number): Refusal | "done" =>
    write() > 0 ? "done" : refusal(s.state.get(id) as State | undefined, now)
  ),
  rotate: db.transaction((o: Parameters<Backend["rotate"]>[0]): boolean => {
    const old = s.rotateOld.get(o.staleExpiresAt, o.id, o.version, o.now) as
      | (StoredOwner & { readonly family: Uint8Array })
      | undefined
    if (old === undefined) return false
    s.insert.run(o.newId, old.family, o.value, o.expiresAt, o.now, o.now, ...owner(o.owner ?? old))
    return true
  }),
  revoke: db.transaction((family: Uint8Array, subject: string | undefined): boolean =>
    (subject === undefined || s.owns.get(family, subject) !== undefined) && s.endFamily.run(family).changes > 0
  ),
  revokeSubject: db.transaction((o: Parameters<Backend["revokeSubject"]>[0]): number => {
    const families = s.subjectFamilies.all({
      subject: o.subject,
      audience: o.audience ?? null,
      except: o.except ?? null,
      now: o.now
    }) as ReadonlyArray<{ readonly family: Uint8Array; readonly live: number }>
    for (const { family } of families) s.endFamily.run(family)
    return families.filter(({ live }) => live === 1).length
  }),
  clear: db.transaction((id: Uint8Array): void => {
    const target = s.target.get(id) as { readonly family: Uint8Array; readonly rotated: number } | undefined
    if (target === undefined) return
    // A key rotated away ends alone; the session's current key ends every key of it.
    if (target.rotated === 1) s.endKey.run(id)
    else s.endFamily.run(target.family)
  })
})

/** The backend on the connection `db`, running the statements `q` through `run`. */
export const make = (db: Database, q: Statements, run: Run): Backend<unknown> => {
  const s = Object.fromEntries(Object.entries(q).map(([name, sql]) => [name, db.prepare(sql)])) as Prepared
  const t = transactions(db, s)
  const outcome = <Done extends string>(done: Done, id: Uint8Array, now: number, write: () => number) =>
    run(() => {
      const result = t.conditional.immediate(id, now, write)
      return result === "done" ? done : result
    })
  return {
    name: "sqlite",
    // Every attempt is synchronous, and `run` retries a locked one only until the deadline.
    enforcesDeadline: true,
    find: ({ id }) =>
      run(() => {
        const found = s.find.get(id) as Found | undefined
        return found === undefined ? undefined : row(found)
      }),
    insert: ({ expiresAt, id, now, owner: o, value }) =>
      run(() => void s.insert.run(id, id, value, expiresAt, now, now, ...owner(o))),
    upsert: ({ expiresAt, id, now, value }) =>
      outcome("written", id, now, () => s.upsert.run(id, id, value, expiresAt, now, now).changes),
    touch: ({ expiresAt, id, now }) => outcome("touched", id, now, () => s.touch.run(expiresAt, now, id, now).changes),
    setOwner: ({ id, now, owner: o }) => outcome("set", id, now, () => s.setOwner.run(...owner(o), now, id, now).changes),
    compareAndSet: ({ expiresAt, id, now, owner: o, value, version }) =>
      run(() => {
        const written = (o === undefined
          ? s.compareAndSet.get(value, expiresAt ?? null, now, id, version, now)
          : s.compareAndSetOwner.get(value, expiresAt ?? null, now, ...owner(o), id, version, now)) as
          | { readonly version: number }
          | undefined
        return written === undefined ? undefined : String(written.version)
      }),
    rotate: (options) => run(() => t.rotate.immediate(options)),
    list: ({ audience, limit, now, subject }) =>
      run(() => s.list.all({ subject, audience: audience ?? null, now, limit }) as ReadonlyArray<InfoRow>),
    page: ({ after, limit, now }) =>
      run(() => s.page.all({ after: after ?? null, now, limit }) as ReadonlyArray<InfoRow>),
    revoke: ({ family, subject }) => run(() => t.revoke.immediate(family, subject)),
    revokeSubject: (options) => run(() => t.revokeSubject.immediate(options)),
    clear: ({ id }) => run(() => t.clear.immediate(id)),
    deleteExpired: ({ limit, now }) => run(() => s.deleteExpired.run(now, limit).changes)
  }
}
