/**
 * A subject's index for `RedisSessionStore`: a hash family → token at `<prefix>{u:<SHA-256(subject)>}`, in a slot of
 * its own, so it cannot change in the same step as a session. It is kept conservative:
 *
 * - a family is entered (with a fresh token) *before* a write gives it that owner, so every session of a subject is
 *   in its index, even when the write that follows fails;
 * - an entry is dropped only if, after its token was read, its family was found not to be the subject's, and the
 *   token is still the one read (a concurrent entry of the same family gets a new token, and survives).
 *
 * Entries left behind are checked and dropped when read (`list`, `revokeSubject`), and in the background when a
 * session ends, expires or changes hands.
 */
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { byGroup, type Config, infoAt, type Keys, type Run, window } from "./redisLayout.js"
import type { RedisFailure } from "./redisConnection.js"
import * as Scripts from "./redisScripts.js"
import type { InfoRow } from "./storeModel.js"

const token = () => randomBytes(9).toString("base64url")

/** What `inspect` found of one family: `I` listed (with its info), `K` the subject's but not listed, `S` stale. */
export interface Found {
  readonly family: string
  readonly status: "I" | "K" | "S"
  readonly info: InfoRow
}

/** Enters `family` in the subject's index, before a write gives it that owner. */
export const register = (run: Run, k: Keys, subject: string | null, family: string) =>
  subject === null ? Effect.void : Effect.asVoid(run(Scripts.register, [k.subject(subject)], "", 0, [family, token()]))

/** The subject's index: family → token. */
export const entries = (run: Run, k: Keys, subject: string) =>
  Effect.map(run(Scripts.entries, [k.subject(subject)], "", 0, [], false), (reply) => {
    const tokens = new Map<string, string>()
    for (let i = 1; i + 1 < reply.length; i += 2) tokens.set(reply[i] as string, reply[i + 1] as string)
    return tokens
  })

/** Drops the entries of `families` whose token is still the one read. */
export const drop = (run: Run, k: Keys, subject: string, tokens: Map<string, string>, families: ReadonlyArray<string>) =>
  families.length === 0 ? Effect.void : Effect.asVoid(
    run(Scripts.prune, [k.subject(subject)], "", 0, families.flatMap((family) => [family, tokens.get(family) ?? ""]))
  )

/** Each family as its group sees it now: listed, kept or stale. */
export const inspect = (
  run: Run,
  k: Keys,
  subject: string,
  audience: string | undefined,
  families: ReadonlyArray<string>,
  now: number
): Effect.Effect<Array<Found>, RedisFailure> =>
  Effect.forEach(byGroup(families), ([group, members]) =>
    Effect.map(
      run(Scripts.inspect, members.map(k.members), group, now, [subject, audience ?? "", ...members], false),
      (reply) =>
        members.map((family, i): Found => ({
          family,
          status: reply[1 + i * 8] as Found["status"],
          info: infoAt(reply, 2 + i * 8)
        }))
    ), { concurrency: window }).pipe(Effect.map((replies) => replies.flat()))

/** Drops the entries of `families` that are not the subject's any more: read, checked, then dropped if unchanged. */
const prune = (run: Run, k: Keys, subject: string, families: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const tokens = yield* entries(run, k, subject)
    const listed = families.filter((family) => tokens.has(family))
    const found = yield* inspect(run, k, subject, undefined, listed, 0)
    yield* drop(run, k, subject, tokens, found.filter((f) => f.status === "S").map((f) => f.family))
  })

/**
 * {@link prune} that no caller waits for, within a deadline of its own; a failure is left to the next read. A
 * subject that is not a string (none) prunes nothing.
 */
export const pruneLater = (start: () => Run, config: Config, k: Keys, subject: unknown, families: ReadonlyArray<string>) =>
  typeof subject !== "string" || families.length === 0 || config.timeout <= 0
    ? Effect.void
    : Effect.asVoid(Effect.forkDetach(Effect.ignore(Effect.suspend(() => prune(start(), k, subject, families)))))
