/**
 * An in-process `SessionStore`: same semantics as the PostgreSQL store (hashing, expiry, upsert, `modify`,
 * cleanup), for tests, prototypes and single-process apps. Its contents vanish with the process.
 *
 * @since 0.1.0
 */
import { Config, type ConfigError, Effect, Layer } from "effect"
import type { InvalidConfig } from "./SessionError.js"
import * as SessionStore from "./SessionStore.js"

interface Entry extends SessionStore.StoredOwner {
  value: string
  expiresAt: number
  version: number
  rotated: boolean
  createdAt: number
  lastSeenAt: number
}

const idOf = (id: Uint8Array) => Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("base64")
const idFrom = (key: string) => new Uint8Array(Buffer.from(key, "base64"))

/**
 * A `Backend` over a `Map`. Every primitive is synchronous, so each is atomic.
 *
 * @since 0.1.0
 * @category backends
 */
export const backend = (): SessionStore.Backend<never> => {
  const rows = new Map<string, Entry>()
  const live = (entry: Entry | undefined, now: number): entry is Entry =>
    entry !== undefined && !entry.rotated && now <= entry.expiresAt
  const info = (key: string, entry: Entry): SessionStore.InfoRow => ({
    id: idFrom(key),
    subject: entry.subject,
    audience: entry.audience,
    metadata: entry.metadata,
    createdAt: entry.createdAt,
    expiresAt: entry.expiresAt,
    lastSeenAt: entry.lastSeenAt
  })
  const ownerOf = (owner: SessionStore.StoredOwner) => ({
    subject: owner.subject,
    audience: owner.audience,
    metadata: owner.metadata
  })
  /** Applies `change` to the row `id` if it is live and not rotated at `now`; otherwise says why not. */
  const changing = <R>(id: Uint8Array, now: number, change: (entry: Entry) => R): R | "missing" | "rotated" | "expired" => {
    const entry = rows.get(idOf(id))
    return entry === undefined ? "missing" : entry.rotated ? "rotated" : now > entry.expiresAt ? "expired" : change(entry)
  }
  const matches = (entry: Entry, subject: string, audience: string | undefined) =>
    entry.subject === subject && (audience === undefined || entry.audience === audience)
  const fresh = (value: string, expiresAt: number, now: number, owner: SessionStore.StoredOwner): Entry => ({
    value,
    expiresAt,
    version: 1,
    rotated: false,
    createdAt: now,
    lastSeenAt: now,
    ...ownerOf(owner)
  })
  return {
    name: "memory",
    // Every primitive is synchronous: it cannot outlive a deadline.
    enforcesDeadline: true,
    find: (id) =>
      Effect.sync(() => {
        const entry = rows.get(idOf(id))
        return entry && {
          value: entry.value,
          expiresAt: entry.expiresAt,
          version: String(entry.version),
          rotated: entry.rotated,
          subject: entry.subject,
          audience: entry.audience
        }
      }),
    insert: (id, value, expiresAt, now, owner) => Effect.sync(() => void rows.set(idOf(id), fresh(value, expiresAt, now, owner))),
    upsert: (id, value, expiresAt, now) =>
      Effect.sync(() => {
        const entry = rows.get(idOf(id))
        if (entry?.rotated) return "rotated"
        const revived = entry === undefined || entry.expiresAt < now
        rows.set(idOf(id), {
          subject: null,
          audience: null,
          metadata: null,
          ...entry,
          value,
          expiresAt,
          version: (entry?.version ?? 0) + 1,
          rotated: false,
          createdAt: revived ? now : entry.createdAt,
          lastSeenAt: now
        })
        return "written"
      }),
    touch: (id, expiresAt, now) =>
      Effect.sync(() =>
        changing(id, now, (entry) => {
          entry.expiresAt = expiresAt
          entry.lastSeenAt = now
          return "touched" as const
        })
      ),
    compareAndSet: (id, version, value, expiresAt, now, owner) =>
      Effect.sync(() => {
        const entry = rows.get(idOf(id))
        if (!live(entry, now) || String(entry.version) !== version) return undefined
        entry.value = value
        if (expiresAt !== undefined) entry.expiresAt = expiresAt
        if (owner !== undefined) Object.assign(entry, ownerOf(owner))
        entry.lastSeenAt = now
        return String(++entry.version)
      }),
    rotate: (id, version, newId, value, expiresAt, staleExpiresAt, now, owner) =>
      Effect.sync(() => {
        const entry = rows.get(idOf(id))
        if (!live(entry, now) || String(entry.version) !== version) return false
        rows.set(idOf(newId), fresh(value, expiresAt, now, owner ?? entry))
        entry.rotated = true
        entry.expiresAt = Math.min(entry.expiresAt, staleExpiresAt)
        entry.version++
        return true
      }),
    setOwner: (id, owner, now) =>
      Effect.sync(() =>
        changing(id, now, (entry) => {
          Object.assign(entry, ownerOf(owner), { lastSeenAt: now })
          return "set" as const
        })
      ),
    list: (subject, audience, now, limit) =>
      Effect.sync(() =>
        [...rows]
          .filter(([, entry]) => live(entry, now) && matches(entry, subject, audience))
          .sort(([, a], [, b]) => b.lastSeenAt - a.lastSeenAt)
          .slice(0, limit)
          .map(([key, entry]) => info(key, entry))
      ),
    page: (after, now, limit) =>
      Effect.sync(() => {
        const from = after === undefined ? undefined : Buffer.from(after)
        return [...rows]
          .map(([key, entry]) => [Buffer.from(key, "base64"), key, entry] as const)
          .filter(([id, , entry]) => live(entry, now) && (from === undefined || Buffer.compare(id, from) > 0))
          .sort(([a], [b]) => Buffer.compare(a, b))
          .slice(0, limit)
          .map(([, key, entry]) => info(key, entry))
      }),
    revoke: (id, subject) =>
      Effect.sync(() => {
        const entry = rows.get(idOf(id))
        if (entry === undefined || (subject !== undefined && entry.subject !== subject)) return false
        return rows.delete(idOf(id))
      }),
    revokeSubject: (subject, audience, except, now) =>
      Effect.sync(() => {
        const keep = except === undefined ? undefined : idOf(except)
        let revoked = 0
        for (const [key, entry] of rows) {
          if (key !== keep && matches(entry, subject, audience)) {
            if (live(entry, now)) revoked++
            rows.delete(key)
          }
        }
        return revoked
      }),
    remove: (id) => Effect.sync(() => void rows.delete(idOf(id))),
    deleteExpiredBatch: (now, limit) =>
      Effect.sync(() => {
        let deleted = 0
        for (const [key, entry] of rows) {
          if (deleted === limit) break
          if (entry.expiresAt < now) {
            rows.delete(key)
            deleted++
          }
        }
        return deleted
      })
  }
}

/**
 * A fresh, empty in-memory store.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { MemorySessionStore, SessionStore } from "effect-session"
 *
 * const program = Effect.gen(function* () {
 *   const store = yield* SessionStore.SessionStore
 *   return yield* store.generate({ value: "{}" })
 * }).pipe(Effect.provide(MemorySessionStore.layer()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: SessionStore.Options = {}
): Layer.Layer<SessionStore.SessionStore, InvalidConfig> =>
  Layer.scoped(SessionStore.SessionStore, Effect.suspend(() => SessionStore.make(backend(), options)))

/**
 * {@link layer} with its options read through `Config`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { MemorySessionStore } from "effect-session"
 *
 * const Sessions = MemorySessionStore.layerConfig({
 *   defaultPeriod: Config.duration("SESSION_PERIOD").pipe(Config.withDefault("1 day"))
 * })
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<SessionStore.Options>
): Layer.Layer<SessionStore.SessionStore, InvalidConfig | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
