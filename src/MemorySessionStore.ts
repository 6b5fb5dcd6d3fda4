/**
 * An in-process `SessionStore`: same semantics as the PostgreSQL store (hashing, expiry, upsert, `modify`,
 * cleanup), for tests, prototypes and single-process apps. Its contents vanish with the process.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import type { InvalidConfig } from "./SessionError.js"
import * as SessionStore from "./SessionStore.js"

interface Entry {
  value: string
  expiresAt: number
  version: number
}

const idOf = (id: Uint8Array) => Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("base64")

/**
 * A `Backend` over a `Map`. Every primitive is synchronous, so each is atomic.
 *
 * @since 0.1.0
 */
export const backend = (): SessionStore.Backend<never> => {
  const rows = new Map<string, Entry>()
  const put = (id: Uint8Array, value: string, expiresAt: number) =>
    Effect.sync(() => {
      const key = idOf(id)
      rows.set(key, { value, expiresAt, version: (rows.get(key)?.version ?? 0) + 1 })
    })
  return {
    find: (id) =>
      Effect.sync(() => {
        const entry = rows.get(idOf(id))
        return entry && { value: entry.value, expiresAt: entry.expiresAt, version: String(entry.version) }
      }),
    insert: put,
    upsert: put,
    touch: (id, expiresAt, now) =>
      Effect.sync(() => {
        const entry = rows.get(idOf(id))
        if (entry === undefined) return "missing"
        if (now > entry.expiresAt) return "expired"
        entry.expiresAt = expiresAt
        return "touched"
      }),
    compareAndSet: (id, version, value, expiresAt, now) =>
      Effect.sync(() => {
        const entry = rows.get(idOf(id))
        if (entry === undefined || String(entry.version) !== version || now > entry.expiresAt) return false
        entry.value = value
        if (expiresAt !== undefined) entry.expiresAt = expiresAt
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
 */
export const layer = (
  options: SessionStore.Options = {}
): Layer.Layer<SessionStore.SessionStore, InvalidConfig> =>
  Layer.scoped(SessionStore.SessionStore, Effect.suspend(() => SessionStore.make(backend(), options)))
