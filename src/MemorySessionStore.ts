/**
 * An in-process `SessionStore`: same semantics as the PostgreSQL store (hashing, expiry, upsert, `modify`,
 * cleanup), for tests, prototypes and single-process apps. Its contents vanish with the process.
 *
 * @since 0.1.0
 */
import { Config, type ConfigError, Effect, Layer } from "effect"
import type { InvalidConfig } from "./SessionError.js"
import * as SessionStore from "./SessionStore.js"

interface Entry {
  value: string
  expiresAt: number
  version: number
  rotated: boolean
}

const idOf = (id: Uint8Array) => Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("base64")

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
  return {
    name: "memory",
    // Every primitive is synchronous: it cannot outlive a deadline.
    enforcesDeadline: true,
    find: (id) =>
      Effect.sync(() => {
        const entry = rows.get(idOf(id))
        return entry &&
          { value: entry.value, expiresAt: entry.expiresAt, version: String(entry.version), rotated: entry.rotated }
      }),
    insert: (id, value, expiresAt) =>
      Effect.sync(() => void rows.set(idOf(id), { value, expiresAt, version: 1, rotated: false })),
    upsert: (id, value, expiresAt) =>
      Effect.sync(() => {
        const entry = rows.get(idOf(id))
        if (entry?.rotated) return "rotated"
        rows.set(idOf(id), { value, expiresAt, version: (entry?.version ?? 0) + 1, rotated: false })
        return "written"
      }),
    touch: (id, expiresAt, now) =>
      Effect.sync(() => {
        const entry = rows.get(idOf(id))
        if (entry === undefined) return "missing"
        if (entry.rotated) return "rotated"
        if (now > entry.expiresAt) return "expired"
        entry.expiresAt = expiresAt
        return "touched"
      }),
    compareAndSet: (id, version, value, expiresAt, now) =>
      Effect.sync(() => {
        const entry = rows.get(idOf(id))
        if (!live(entry, now) || String(entry.version) !== version) return undefined
        entry.value = value
        if (expiresAt !== undefined) entry.expiresAt = expiresAt
        return String(++entry.version)
      }),
    rotate: (id, version, newId, value, expiresAt, staleExpiresAt, now) =>
      Effect.sync(() => {
        const entry = rows.get(idOf(id))
        if (!live(entry, now) || String(entry.version) !== version) return false
        rows.set(idOf(newId), { value, expiresAt, version: 1, rotated: false })
        entry.rotated = true
        entry.expiresAt = Math.min(entry.expiresAt, staleExpiresAt)
        entry.version++
        return true
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
