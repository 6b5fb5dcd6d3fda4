/**
 * Deterministic session keys, so every competitor and pgbench hit the same pre-filled rows:
 * key n = base64url(SHA-256("seed-" + n)) (a well-formed 43-character key), id n = SHA-256(key n).
 */
import { createHash, randomBytes } from "node:crypto"

export const keyOf = (n: number): string => createHash("sha256").update(`seed-${n}`).digest("base64url")

/** The same key, computed by PostgreSQL from an integer expression `n`. */
export const keySql = (n: string) =>
  `rtrim(translate(encode(sha256(convert_to('seed-' || ${n}, 'UTF8')), 'base64'), '+/', '-_'), '=')`

/** A well-formed key that no table contains. */
export const missingKey = (): string => randomBytes(32).toString("base64url")

/** A typical session value: a small JSON document (about 200 bytes). */
export const sampleValue = (n: number) =>
  JSON.stringify({ v: 1, d: { user: `user-${n}`, roles: ["reader"], cart: [n % 7, n % 11], visits: n % 100 }, f: {}, c: 0, r: false })
