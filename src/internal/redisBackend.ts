/**
 * The Redis `Backend`: each primitive one script of `redisScripts.ts` on the session's slot group, so it is atomic on
 * standalone Redis and on a sharded Cluster alike (every key of a session, and its family, share one slot: see
 * `redisLayout.ts`). A primitive that also touches a subject's index (`redisSubjectIndex.ts`) does so before the
 * write when it enters an owner, and after it, in the background, when it leaves one.
 *
 * Every primitive is bounded by the store's deadline in real time (all of a primitive's commands share its
 * deadline, which the connection enforces), so the backend enforces its deadline itself.
 */
import { Effect } from "effect"
import type { Connection, RedisFailure } from "./redisConnection.js"
import {
  byGroup,
  bytes,
  type Config,
  groupOf,
  groups,
  hex,
  infoAt,
  keys,
  type Keys,
  rotationKey,
  type Run,
  runner,
  window
} from "./redisLayout.js"
import * as Scripts from "./redisScripts.js"
import * as SubjectIndex from "./redisSubjectIndex.js"
import type { Backend, InfoRow, Refusal, Row, StoredOwner } from "./storeModel.js"

/** Families a `page` script scans at most per call, beyond the page's size. */
const scanBudget = 200

/** What every primitive works with. */
interface Context {
  readonly k: Keys
  readonly config: Config
  /** A runner for one primitive: its deadline starts now. */
  readonly start: () => Run
}

const ownerArgs = (owner: StoredOwner | undefined) =>
  owner === undefined ? ["0", "", "", ""] : ["1", owner.subject ?? "", owner.audience ?? "", owner.metadata ?? ""]

const status = <Done extends string>(reply: ReadonlyArray<unknown>) => reply[1] as Done | Refusal

/** `find`'s reply as a row; only the nonce when there is none (or it ended). */
const rowOf = (reply: ReadonlyArray<unknown>): Row | undefined =>
  reply.length < 8 ? undefined : {
    value: reply[1] as string,
    expiresAt: Number(reply[2]),
    version: reply[3] as string,
    rotated: reply[4] === "1",
    subject: (reply[5] as string | null) ?? null,
    audience: (reply[6] as string | null) ?? null,
    family: bytes(reply[7] as string)
  }

/** The family of the key `id`: its row's, or its own when there is none yet (an upsert would create it so). */
const familyOf = (run: Run, k: Keys, id: string) =>
  Effect.map(run(Scripts.find, [k.row(id)], groupOf(id), 0, [], false), (reply) => (reply[7] as string | undefined) ?? id)

/** Enters the new owner of the key `id` (when one is given) in its subject's index; the key's family. */
const prepareOwner = (run: Run, k: Keys, id: string, owner: StoredOwner | undefined) =>
  owner === undefined
    ? Effect.succeed(id)
    : Effect.tap(familyOf(run, k, id), (family) => SubjectIndex.register(run, k, owner.subject, family))

/** After a write that set an owner: the previous subject's entry, pruned in the background if the subject changed. */
const afterOwnerChange = (ctx: Context, previous: unknown, owner: StoredOwner | undefined, family: string) =>
  owner === undefined || previous === null || previous === owner.subject
    ? Effect.void
    : SubjectIndex.pruneLater(ctx.start, ctx.config, ctx.k, previous, [family])

/** Live sessions of one group after `cursor`, at most `need`, over as many calls as its scan budget needs. */
const pageOfGroup = (run: Run, k: Keys, group: string, cursor: string, need: number, now: number) =>
  Effect.iterate({ found: [] as Array<InfoRow>, cursor, more: true }, {
    while: (state) => state.more && state.found.length < need,
    body: (state) =>
      Effect.map(
        run(Scripts.page, [k.families(group)], group, now, [
          state.cursor,
          String(need - state.found.length),
          String(need + scanBudget)
        ], false),
        (reply) => {
          const found = [...state.found]
          for (let at = 2; at + 6 < reply.length; at += 7) found.push(infoAt(reply, at))
          return { found, cursor: reply[1] as string, more: reply[1] !== "" }
        }
      )
  })

/** Live sessions in family order: group after group (a family's group is its first byte), a window at a time. */
const page = (ctx: Context): Backend<RedisFailure>["page"] => ({ after, limit, now }) =>
  Effect.gen(function*() {
    const run = ctx.start()
    const from = after === undefined ? "" : hex(after)
    const first = from === "" ? 0 : parseInt(groupOf(from), 16)
    const rows: Array<InfoRow> = []
    for (let g = first; g < groups.length && rows.length < limit; g += window) {
      const need = limit - rows.length
      const results = yield* Effect.forEach(
        groups.slice(g, g + window),
        (group, i) => pageOfGroup(run, ctx.k, group, g === first && i === 0 ? from : "", need, now),
        { concurrency: window }
      )
      for (const result of results) rows.push(...result.found.slice(0, limit - rows.length))
    }
    return rows
  })

/**
 * Deletes at most `limit` expired rows: counts each group's, shares the limit out in group order, deletes, then
 * prunes the subject index entries of the sessions that went (in the background).
 */
const deleteExpired = (ctx: Context): Backend<RedisFailure>["deleteExpired"] => ({ limit, now }) =>
  Effect.gen(function*() {
    const run = ctx.start()
    const counts = yield* Effect.forEach(groups, (group) =>
      Effect.map(run(Scripts.countExpired, [ctx.k.expiries(group)], group, now, [], false), (reply) => Number(reply[1])), {
      concurrency: 4 * window
    })
    let budget = limit
    const plan: Array<[string, number]> = []
    for (const [g, count] of counts.entries()) {
      const share = Math.min(count, budget)
      if (share > 0) plan.push([groups[g]!, share])
      budget -= share
    }
    const replies = yield* Effect.forEach(plan, ([group, n]) =>
      run(Scripts.deleteExpired, [ctx.k.expiries(group)], group, now, [String(n)]), { concurrency: window })
    const owned = new Map<string, Array<string>>()
    for (const reply of replies) {
      for (let at = 2; at + 1 < reply.length; at += 2) {
        const subject = reply[at + 1] as string
        owned.set(subject, [...(owned.get(subject) ?? []), reply[at] as string])
      }
    }
    for (const [subject, families] of owned) yield* SubjectIndex.pruneLater(ctx.start, ctx.config, ctx.k, subject, families)
    return replies.reduce((sum, reply) => sum + Number(reply[1]), 0)
  })

/** The sessions of a subject, by its index; stale entries are dropped on the way. */
const list = (ctx: Context): Backend<RedisFailure>["list"] => ({ audience, limit, now, subject }) =>
  Effect.gen(function*() {
    const run = ctx.start()
    const tokens = yield* SubjectIndex.entries(run, ctx.k, subject)
    const found = yield* SubjectIndex.inspect(run, ctx.k, subject, audience, [...tokens.keys()], now)
    yield* SubjectIndex.drop(run, ctx.k, subject, tokens, found.filter((f) => f.status === "S").map((f) => f.family))
    return found.filter((f) => f.status === "I").map((f) => f.info)
      .sort((a, b) => b.lastSeenAt - a.lastSeenAt)
      .slice(0, limit)
  })

/** Ends the subject's sessions, each family in one script of its group; entries of ended or stale families go. */
const revokeSubject = (ctx: Context): Backend<RedisFailure>["revokeSubject"] => ({ audience, except, now, subject }) =>
  Effect.gen(function*() {
    const run = ctx.start()
    const tokens = yield* SubjectIndex.entries(run, ctx.k, subject)
    const spared = except === undefined ? "" : hex(except)
    const outcomes = yield* Effect.forEach(byGroup([...tokens.keys()]), ([group, members]) =>
      Effect.map(
        run(Scripts.revokeOwned, members.map(ctx.k.members), group, now, [subject, audience ?? "", spared, ...members]),
        (reply) => members.map((family, i) => [family, reply[1 + i] as string] as const)
      ), { concurrency: window }).pipe(Effect.map((replies) => replies.flat()))
    const gone = outcomes.filter(([, outcome]) => outcome !== "K").map(([family]) => family)
    yield* SubjectIndex.drop(run, ctx.k, subject, tokens, gone)
    return outcomes.filter(([, outcome]) => outcome === "L").length
  })

/** The writes that name an owner: `setOwner`, `compareAndSet` and `rotate`. */
const ownerWrites = (ctx: Context): Pick<Backend<RedisFailure>, "setOwner" | "compareAndSet" | "rotate"> => ({
  setOwner: ({ id, now, owner }) =>
    Effect.gen(function*() {
      const [run, key] = [ctx.start(), hex(id)]
      const family = yield* prepareOwner(run, ctx.k, key, owner)
      const reply = yield* run(Scripts.setOwner, [ctx.k.row(key)], groupOf(key), now, ownerArgs(owner).slice(1))
      if (reply[1] === "set") yield* afterOwnerChange(ctx, reply[2] ?? null, owner, family)
      return status<"set">(reply)
    }),
  compareAndSet: ({ expiresAt, id, now, owner, value, version }) =>
    Effect.gen(function*() {
      const [run, key] = [ctx.start(), hex(id)]
      const family = yield* prepareOwner(run, ctx.k, key, owner)
      const expiry = expiresAt === undefined ? "" : String(expiresAt)
      const reply = yield* run(Scripts.compareAndSet, [ctx.k.row(key)], groupOf(key), now, [key, version, value, expiry, ...ownerArgs(owner)])
      if (reply.length < 2) return undefined
      yield* afterOwnerChange(ctx, reply[2] ?? null, owner, family)
      return reply[1] as string
    }),
  rotate: ({ expiresAt, id, newId, now, owner, staleExpiresAt, value, version }) =>
    Effect.gen(function*() {
      const [run, key, next] = [ctx.start(), hex(id), hex(newId)]
      // A key of another group would leave the family's slot: refused before anything is written.
      if (groupOf(key) !== groupOf(next)) return yield* Effect.die(new Error("rotation key outside the family's slot group"))
      const family = yield* prepareOwner(run, ctx.k, key, owner)
      const reply = yield* run(Scripts.rotate, [ctx.k.row(key), ctx.k.row(next)], groupOf(key), now, [
        key,
        version,
        next,
        value,
        String(expiresAt),
        String(staleExpiresAt),
        ...ownerArgs(owner)
      ])
      if (reply[1] !== "1") return false
      yield* afterOwnerChange(ctx, reply[2] ?? null, owner, family)
      return true
    })
})

/** The writes of one key that name no owner. */
const keyWrites = (ctx: Context): Pick<Backend<RedisFailure>, "insert" | "upsert" | "touch" | "clear" | "revoke"> => ({
  insert: ({ expiresAt, id, now, owner, value }) =>
    Effect.suspend(() => {
      const [run, key] = [ctx.start(), hex(id)]
      return Effect.zipRight(
        SubjectIndex.register(run, ctx.k, owner.subject, key),
        run(Scripts.insert, [ctx.k.row(key)], groupOf(key), now, [key, value, String(expiresAt), ...ownerArgs(owner).slice(1)])
      )
    }),
  upsert: ({ expiresAt, id, now, value }) =>
    Effect.suspend(() =>
      Effect.map(ctx.start()(Scripts.upsert, [ctx.k.row(hex(id))], groupOf(hex(id)), now, [hex(id), value, String(expiresAt)]), status<"written">)
    ),
  touch: ({ expiresAt, id, now }) =>
    Effect.suspend(() =>
      Effect.map(ctx.start()(Scripts.touch, [ctx.k.row(hex(id))], groupOf(hex(id)), now, [hex(id), String(expiresAt)]), status<"touched">)
    ),
  clear: ({ id, now }) =>
    Effect.gen(function*() {
      const key = hex(id)
      const reply = yield* ctx.start()(Scripts.clear, [ctx.k.row(key)], groupOf(key), now, [key])
      if (reply.length > 1) yield* SubjectIndex.pruneLater(ctx.start, ctx.config, ctx.k, reply[2], [reply[1] as string])
    }),
  revoke: ({ family, now, subject }) =>
    Effect.gen(function*() {
      const key = hex(family)
      const reply = yield* ctx.start()(Scripts.revoke, [ctx.k.members(key)], groupOf(key), now, [subject ?? ""])
      if (reply[1] !== "1") return false
      yield* SubjectIndex.pruneLater(ctx.start, ctx.config, ctx.k, reply[2], [key])
      return true
    })
})

/** The backend on `connection`. */
export const make = (connection: Connection, config: Config): Backend<RedisFailure> => {
  const k = keys(config.prefix)
  const ctx: Context = { k, config, start: runner(connection, config, k) }
  return {
    name: "redis",
    enforcesDeadline: true,
    rotationKey,
    // The hottest path: one command, no runner (its deadline starts when it runs), the row decoded as the reply arrives.
    find: ({ id }) => connection.run(Scripts.find, [k.row(hex(id))], [], false, undefined, rowOf),
    ...keyWrites(ctx),
    ...ownerWrites(ctx),
    list: list(ctx),
    page: page(ctx),
    revokeSubject: revokeSubject(ctx),
    deleteExpired: deleteExpired(ctx),
    claimCleanup: ({ now, spacing }) =>
      Effect.map(
        ctx.start()(Scripts.claimCleanup, [ctx.k.cleanup], "", now, [String(now), String(spacing)]),
        (reply) => Number(reply[1]) === 1
      )
  }
}
