/**
 * Where `RedisSessionStore` keeps things (see `redisScripts.ts` for the fields): the slot group of an id (its first
 * byte, in hex), the keys of a group, a subject's index, and how a run of a script is bound to one primitive's
 * deadline. A rotation's new key is drawn until its id falls in its family's group ({@link rotationKey}).
 */
import type { Effect } from "effect"
import * as Crypto from "node:crypto"
import * as SessionKey from "../SessionKey.js"
import { encode } from "./bytes.js"
import type { Connection, RedisFailure } from "./redisConnection.js"
import type { Script } from "./redisScripts.js"
import type { InfoRow } from "./storeModel.js"

export interface Config {
  /** Prepended to every key; holds no `{` or `}`. */
  readonly prefix: string
  /** How long past a session's expiry Redis keeps its keys (the safety-net TTL), in ms. */
  readonly margin: number
  /** The deadline of each primitive (and of background index maintenance), in ms. */
  readonly timeout: number
}

/** Slot groups (and families) worked on at once. */
export const window = 16

export const hex = (bytes: Uint8Array) => encode(bytes, "hex")
/** The bytes of a hex string (a `Buffer`, which is a `Uint8Array`: no second copy). */
export const bytes = (text: string): Uint8Array => Buffer.from(text, "hex")

/** Every slot group, in family order. */
export const groups = Array.from({ length: 256 }, (_, g) => g.toString(16).padStart(2, "0"))

/** The group of an id or family in hex. */
export const groupOf = (id: string) => id.slice(0, 2)

/** The keys of one store (one prefix). */
export const keys = (prefix: string) => {
  const base = (group: string) => `${prefix}{${group}}`
  return {
    base,
    row: (id: string) => `${base(groupOf(id))}r:${id}`,
    members: (family: string) => `${base(groupOf(family))}m:${family}`,
    families: (group: string) => `${base(group)}f`,
    expiries: (group: string) => `${base(group)}x`,
    subject: (subject: string) => `${prefix}{u:${Crypto.createHash("sha256").update(subject).digest("hex")}}`,
    cleanup: `${prefix}{cleanup}`
  }
}

export type Keys = ReturnType<typeof keys>

/** Runs a script in a group at `now`, within the deadline of the primitive that made it. */
export type Run = (
  script: Script,
  keys: ReadonlyArray<string>,
  group: string,
  now: number,
  args: ReadonlyArray<string>,
  write?: boolean
) => Effect.Effect<Array<unknown>, RedisFailure>

/** The runner of one primitive: every call it makes shares the deadline `timeout` from now (real time). */
export const runner = (connection: Connection, config: Config, k: Keys) => (): Run => {
  const deadline = performance.now() + config.timeout
  const margin = String(config.margin)
  return (script, keys, group, now, args, write = true) =>
    connection.run(script, keys, script.bare ? args : [k.base(group), margin, String(now), ...args], write, deadline)
}

/** A listing's 7 fields (family, subject, audience, metadata, createdAt, expiresAt, lastSeenAt) as an `InfoRow`. */
export const infoAt = (reply: ReadonlyArray<unknown>, at: number): InfoRow => ({
  id: bytes(reply[at] as string),
  subject: (reply[at + 1] as string | null) ?? null,
  audience: (reply[at + 2] as string | null) ?? null,
  metadata: (reply[at + 3] as string | null) ?? null,
  createdAt: Number(reply[at + 4]),
  expiresAt: Number(reply[at + 5]),
  lastSeenAt: Number(reply[at + 6])
})

/** Families by slot group. */
export const byGroup = (families: ReadonlyArray<string>): Array<[string, Array<string>]> => {
  const grouped = new Map<string, Array<string>>()
  for (const family of families) {
    const members = grouped.get(groupOf(family))
    if (members === undefined) grouped.set(groupOf(family), [family])
    else members.push(family)
  }
  return [...grouped]
}

/** Candidates drawn per `randomBytes` call by {@link rotationKey}. */
const batch = 64

/**
 * A fresh key whose id falls in the group of `family` (its first byte): 256 candidates on average (one SHA-256
 * each): about 0.35 ms alone on this machine, 1.1–1.4 ms (wall time) while the test suite loads it.
 */
export const rotationKey = (family: Uint8Array): SessionKey.SessionKey => {
  const group = family[0]
  for (let round = 0; round < 100_000; round++) {
    const pool = Crypto.randomBytes(SessionKey.byteLength * batch)
    for (let i = 0; i < batch; i++) {
      const key = pool.subarray(i * SessionKey.byteLength, (i + 1) * SessionKey.byteLength).toString("base64url")
      if (SessionKey.hash(key as SessionKey.SessionKey)[0] === group) return key as SessionKey.SessionKey
    }
  }
  throw new Error("no key found for the family's slot group")
}
