/**
 * An in-process `SessionStore`: same semantics as the PostgreSQL store (hashing, expiry, upsert, `modify`,
 * cleanup), for tests, prototypes and single-process apps. Its contents vanish with the process.
 *
 * @since 0.1.0
 */
import { type ConfigError, Effect, Layer } from "effect"
import { encode } from "./internal/bytes.js"
import { type Configured, unwrapConfig } from "./internal/options.js"
import type { InvalidConfig } from "./SessionError.js"
import * as SessionStore from "./SessionStore.js"

interface Entry extends SessionStore.StoredOwner {
  value: string
  expiresAt: number
  version: number
  rotated: boolean
  /** Ended (cleared or revoked): a tombstone until it expires, so nothing brings it back. */
  ended: boolean
  /** The session's identity, as a map key (base64 of the id of its first key). */
  readonly family: string
  readonly createdAt: number
  lastSeenAt: number
}

const keyOf = (id: Uint8Array) => encode(id, "base64")
const bytesOf = (key: string) => new Uint8Array(Buffer.from(key, "base64"))

const ownerOf = (owner: SessionStore.StoredOwner): SessionStore.StoredOwner => ({
  subject: owner.subject,
  audience: owner.audience,
  metadata: owner.metadata
})

/** Why an entry cannot be changed at `now`, if it cannot. */
const refusal = (entry: Entry | undefined, now: number): SessionStore.Refusal | undefined =>
  entry === undefined || entry.ended ? "missing" : entry.rotated ? "rotated" : now > entry.expiresAt ? "expired" : undefined

/** A live session's current entry: not ended, not rotated, not expired. */
const isLive = (entry: Entry, now: number) => refusal(entry, now) === undefined

const info = (entry: Entry): SessionStore.InfoRow => ({
  id: bytesOf(entry.family),
  ...ownerOf(entry),
  createdAt: entry.createdAt,
  expiresAt: entry.expiresAt,
  lastSeenAt: entry.lastSeenAt
})

/** The rows of a memory store: every primitive synchronous, so each is atomic. */
class Rows {
  private readonly rows = new Map<string, Entry>()

  private fresh(family: string, value: string, expiresAt: number, now: number, owner: SessionStore.StoredOwner): Entry {
    return { value, expiresAt, version: 1, rotated: false, ended: false, family, createdAt: now, lastSeenAt: now, ...ownerOf(owner) }
  }

  /** Ends an entry: a tombstone that keeps only its expiry and family. */
  private end(entry: Entry): void {
    Object.assign(entry, { ended: true, value: "", subject: null, audience: null, metadata: null, version: entry.version + 1 })
  }

  /** Ends every entry of these families; which of them had a live current entry. */
  private endFamilies(families: ReadonlySet<string>, now: number): Set<string> {
    const live = new Set<string>()
    for (const entry of this.rows.values()) {
      if (entry.ended || !families.has(entry.family)) continue
      if (isLive(entry, now)) live.add(entry.family)
      this.end(entry)
    }
    return live
  }

  find(id: Uint8Array): SessionStore.Row | undefined {
    const entry = this.rows.get(keyOf(id))
    return entry === undefined || entry.ended ? undefined : {
      value: entry.value,
      expiresAt: entry.expiresAt,
      version: String(entry.version),
      rotated: entry.rotated,
      subject: entry.subject,
      audience: entry.audience,
      family: bytesOf(entry.family)
    }
  }

  insert(options: Parameters<SessionStore.Backend["insert"]>[0]): void {
    const key = keyOf(options.id)
    this.rows.set(key, this.fresh(key, options.value, options.expiresAt, options.now, options.owner))
  }

  upsert(options: Parameters<SessionStore.Backend["upsert"]>[0]): "written" | SessionStore.Refusal {
    const entry = this.rows.get(keyOf(options.id))
    if (entry === undefined) {
      this.insert({ ...options, owner: { subject: null, audience: null, metadata: null } })
      return "written"
    }
    const refused = refusal(entry, options.now)
    if (refused !== undefined) return refused
    if (entry.value !== options.value) entry.version++
    Object.assign(entry, { value: options.value, expiresAt: options.expiresAt, lastSeenAt: options.now })
    return "written"
  }

  /** Applies `change` to the live entry `id`, or says why not. */
  change<R>(id: Uint8Array, now: number, change: (entry: Entry) => R): R | SessionStore.Refusal {
    const entry = this.rows.get(keyOf(id))
    const refused = refusal(entry, now)
    if (refused !== undefined) return refused
    entry!.lastSeenAt = now
    return change(entry!)
  }

  compareAndSet(options: Parameters<SessionStore.Backend["compareAndSet"]>[0]): string | undefined {
    const entry = this.rows.get(keyOf(options.id))
    if (entry === undefined || !isLive(entry, options.now) || String(entry.version) !== options.version) return undefined
    entry.value = options.value
    if (options.expiresAt !== undefined) entry.expiresAt = options.expiresAt
    if (options.owner !== undefined) Object.assign(entry, ownerOf(options.owner))
    entry.lastSeenAt = options.now
    return String(++entry.version)
  }

  rotate(options: Parameters<SessionStore.Backend["rotate"]>[0]): boolean {
    const entry = this.rows.get(keyOf(options.id))
    if (entry === undefined || !isLive(entry, options.now) || String(entry.version) !== options.version) return false
    const { newId, value, expiresAt, now, owner } = options
    this.rows.set(keyOf(newId), this.fresh(entry.family, value, expiresAt, now, owner ?? entry))
    entry.rotated = true
    entry.expiresAt = Math.min(entry.expiresAt, options.staleExpiresAt)
    entry.version++
    return true
  }

  /** Current entries (live, unrotated) matching `keep`, most recently seen first or in family order. */
  current(now: number, keep: (entry: Entry) => boolean): Array<Entry> {
    return [...this.rows.values()].filter((entry) => isLive(entry, now) && keep(entry))
  }

  revoke(options: Parameters<SessionStore.Backend["revoke"]>[0]): boolean {
    const family = keyOf(options.family)
    const entries = [...this.rows.values()].filter((entry) => entry.family === family && !entry.ended)
    const allowed = options.subject === undefined ||
      entries.some((entry) => !entry.rotated && entry.subject === options.subject)
    if (entries.length === 0 || !allowed) return false
    this.endFamilies(new Set([family]), options.now)
    return true
  }

  revokeSubject(options: Parameters<SessionStore.Backend["revokeSubject"]>[0]): number {
    const except = options.except === undefined ? undefined : keyOf(options.except)
    const families = new Set<string>()
    for (const entry of this.rows.values()) {
      const owned = entry.subject === options.subject &&
        (options.audience === undefined || entry.audience === options.audience)
      if (owned && !entry.ended && !entry.rotated && entry.family !== except) families.add(entry.family)
    }
    return this.endFamilies(families, options.now).size
  }

  clear(id: Uint8Array, now: number): void {
    const entry = this.rows.get(keyOf(id))
    if (entry === undefined || entry.ended) return
    if (entry.rotated) this.end(entry)
    else this.endFamilies(new Set([entry.family]), now)
  }

  deleteExpired(now: number, limit: number): number {
    let deleted = 0
    for (const [key, entry] of this.rows) {
      if (deleted === limit) break
      if (entry.expiresAt < now) {
        this.rows.delete(key)
        deleted++
      }
    }
    return deleted
  }
}

/**
 * A `Backend` over a `Map`. Every primitive is synchronous, so each is atomic.
 *
 * @since 0.1.0
 * @category backends
 */
export const backend = (): SessionStore.Backend<never> => {
  const rows = new Rows()
  const byFamily = (a: Entry, b: Entry) => Buffer.compare(bytesOf(a.family), bytesOf(b.family))
  return {
    name: "memory",
    // Every primitive is synchronous: it cannot outlive a deadline.
    enforcesDeadline: true,
    find: ({ id }) => Effect.sync(() => rows.find(id)),
    insert: (options) => Effect.sync(() => rows.insert(options)),
    upsert: (options) => Effect.sync(() => rows.upsert(options)),
    touch: ({ expiresAt, id, now }) =>
      Effect.sync(() => rows.change(id, now, (entry) => ((entry.expiresAt = expiresAt), "touched" as const))),
    compareAndSet: (options) => Effect.sync(() => rows.compareAndSet(options)),
    rotate: (options) => Effect.sync(() => rows.rotate(options)),
    setOwner: ({ id, now, owner }) =>
      Effect.sync(() => rows.change(id, now, (entry) => (Object.assign(entry, ownerOf(owner)), "set" as const))),
    list: ({ audience, limit, now, subject }) =>
      Effect.sync(() =>
        rows.current(now, (e) => e.subject === subject && (audience === undefined || e.audience === audience))
          .sort((a, b) => b.lastSeenAt - a.lastSeenAt)
          .slice(0, limit)
          .map(info)
      ),
    page: ({ after, limit, now }) =>
      Effect.sync(() => {
        const from = after === undefined ? undefined : Buffer.from(after)
        return rows.current(now, (e) => from === undefined || Buffer.compare(bytesOf(e.family), from) > 0)
          .sort(byFamily)
          .slice(0, limit)
          .map(info)
      }),
    revoke: (options) => Effect.sync(() => rows.revoke(options)),
    revokeSubject: (options) => Effect.sync(() => rows.revokeSubject(options)),
    clear: ({ id, now }) => Effect.sync(() => rows.clear(id, now)),
    deleteExpired: ({ limit, now }) => Effect.sync(() => rows.deleteExpired(now, limit))
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
  config: Configured<SessionStore.Options>
): Layer.Layer<SessionStore.SessionStore, InvalidConfig | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(unwrapConfig(config), layer))
