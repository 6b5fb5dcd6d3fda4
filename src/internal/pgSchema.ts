/**
 * The session table of `PgSessionStore`: its name checked and quoted, and its creation or in-place upgrade when the
 * layer starts (under an advisory lock, so instances starting together take turns; each attempt bounded by a short
 * lock timeout and retried while another instance upgrades the table or a migration holds it, up to a deadline).
 */
import type { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import { InvalidConfig, SessionStoreError } from "../SessionError.js"
import { columns, indexName, leaseTable, schema } from "./pgStatements.js"
import { codeOf } from "./startupFailure.js"

/** A table: quoted, its bare last part, its schema if qualified, and its cleanup lease's quoted name. */
export interface Target {
  readonly quoted: string
  readonly table: string
  readonly schema: string | undefined
  readonly lease: string
}

/** Durability of the session writes (see `PgSessionStore.Options`). */
export type Durability = "full" | "relaxed" | "unlogged"

const identifier = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/

/** Validates a possibly schema-qualified table name and quotes it. */
export const quoteTableName = (tableName: string): Effect.Effect<Target, InvalidConfig> => {
  const parts = tableName.split(".")
  if (parts.length > 2 || !parts.every((part) => identifier.test(part))) {
    return Effect.fail(
      new InvalidConfig({
        option: "tableName",
        reason: `${JSON.stringify(tableName.slice(0, 200))} is not an identifier or schema.identifier`
      })
    )
  }
  const table = parts.at(-1)!
  const schema = parts.length === 2 ? parts[0] : undefined
  return Effect.succeed({
    quoted: parts.map((part) => `"${part}"`).join("."),
    table,
    schema,
    lease: [...(schema === undefined ? [] : [schema]), indexName(table, "cleanup_lease")].map((p) => `"${p}"`).join(".")
  })
}

/** The DDL the layer would run, for teams that manage their schema themselves. */
export const ddl = (target: Target, durability: Durability): string => {
  const q = schema(target.quoted, target.table, durability)
  return [q.createTable, ...q.indexes.map(([, statement]) => statement), leaseTable(target.lease)]
    .map((statement) => `${statement};\n`).join("")
}

type Schema = ReturnType<typeof schema>

const missingColumns = (present: ReadonlySet<string>) => columns.map(([name]) => name).filter((n) => !present.has(n))

const presentColumns = (sql: PgClient.PgClient, q: Schema, target: Target) =>
  Effect.map(
    sql.unsafe<{ name: string }>(q.tableColumns, [target.quoted]).withoutTransform,
    (rows) => new Set(rows.map((row) => row.name))
  )

/**
 * Creates the table, its missing columns (a catalog-only change), indexes and cleanup lease, in one transaction
 * under an advisory lock, waiting at most `lockWait` ms for each lock; returns the columns still missing (those of a
 * table that is not a session table).
 */
const upgrade = (sql: PgClient.PgClient, q: Schema, target: Target, lockWait: number) =>
  sql.withTransaction(Effect.gen(function*() {
    yield* sql.unsafe("SELECT set_config('lock_timeout', $1, true)", [`${Math.ceil(lockWait)}ms`])
    yield* sql.unsafe("SELECT pg_advisory_xact_lock(hashtext($1))", [`effect-session:${target.quoted}`])
    yield* sql.unsafe(q.createTable)
    const missing = missingColumns(yield* presentColumns(sql, q, target))
    if (missing.some((name) => !q.upgradable(name))) return missing
    for (const name of missing) yield* sql.unsafe(q.addColumn(name))
    const indexes = new Set(
      (yield* sql.unsafe<{ name: string }>(q.tableIndexes, [target.quoted]).withoutTransform).map((i) => i.name)
    )
    for (const [name, statement] of q.indexes) if (!indexes.has(name)) yield* sql.unsafe(statement)
    yield* sql.unsafe(leaseTable(target.lease))
    return []
  }))

/** Server errors that end an attempt of the upgrade while a lock is held elsewhere: worth another attempt. */
const lockedOut = new Set(["55P03", "40P01"])

/** Wall-clock sleep: start-up waits in real time, also in tests that drive the store's clock. */
const pause = (millis: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, millis)))

/**
 * {@link upgrade}, attempted again while another instance upgrades the table or a migration holds it (each attempt
 * waits at most a second for a lock, so live traffic never queues long behind it), until `startupTimeout` ms.
 */
const upgradeWithin = (sql: PgClient.PgClient, q: Schema, target: Target, startupTimeout: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + startupTimeout
    for (let attempt = 1;; attempt++) {
      const lockWait = Math.max(50, Math.min(1_000, deadline - Date.now()))
      const missing = yield* upgrade(sql, q, target, lockWait).pipe(
        Effect.catchIf(
          (error) => lockedOut.has(codeOf(error) ?? "") && Date.now() < deadline,
          () => Effect.succeed(undefined)
        )
      )
      if (missing !== undefined) return missing
      if (attempt === 1) {
        yield* Effect.logInfo(
          `table ${target.quoted} is locked (another instance upgrading it, or a migration): start-up waits for it, ` +
            `up to startupTimeout (${startupTimeout} ms)`
        ).pipe(Effect.annotateLogs("service", "effect-session/PgSessionStore"))
      }
      yield* pause(Math.min(100 * attempt, 1_000, Math.max(0, deadline - Date.now())))
    }
  })

/** Why the table cannot serve sessions, given the columns it lacks; nothing if it can. */
const unusable = (q: Schema, target: Target, missing: ReadonlyArray<string>): InvalidConfig | undefined => {
  if (missing.includes("id")) {
    return new InvalidConfig({
      option: "tableName",
      reason: `table ${target.quoted} does not exist (createTable is false; see PgSessionStore.schemaSql)`
    })
  }
  if (missing.some((name) => !q.upgradable(name))) {
    return new InvalidConfig({
      option: "tableName",
      reason: `table ${target.quoted} is not a session table: it lacks ${missing.join(", ")}`
    })
  }
  if (missing.length > 0) {
    return new InvalidConfig({
      option: "createTable",
      reason: `table ${target.quoted} lacks column(s) ${missing.join(", ")}; add them with: ${
        missing.map((name) => q.addColumn(name)).join("; ")
      } (or build the layer with createTable: true, which does it)`
    })
  }
  return undefined
}

/** Warns when the table's persistence differs from `durability`: start-up never rewrites a table. */
const checkPersistence = (sql: PgClient.PgClient, q: Schema, target: Target, durability: Durability) =>
  Effect.gen(function*() {
    const [row] = yield* sql.unsafe<{ persistence: string }>(q.persistence, [target.quoted]).withoutTransform
    const unlogged = row?.persistence === "u"
    if (unlogged === (durability === "unlogged")) return
    yield* Effect.logWarning(
      `table ${target.quoted} is ${unlogged ? "UNLOGGED" : "LOGGED"} but durability is "${durability}"; start-up never ` +
        `rewrites a table. To switch, run once (it rewrites the table under an exclusive lock): ${q.setPersistence}`
    ).pipe(Effect.annotateLogs("service", "effect-session/PgSessionStore"))
  })

/**
 * Warns about the indexes a table managed by its team lacks, with the statement that builds each without blocking;
 * and about a missing cleanup lease (then each instance cleans up on its own). Returns whether the lease exists.
 */
const checkIndexes = (sql: PgClient.PgClient, q: Schema, target: Target) =>
  Effect.gen(function*() {
    const present = new Set(
      (yield* sql.unsafe<{ name: string }>(q.tableIndexes, [target.quoted]).withoutTransform).map((i) => i.name)
    )
    const [lease] = yield* sql.unsafe<{ present: boolean }>(q.relationExists, [target.lease]).withoutTransform
    if (lease?.present !== true) {
      yield* Effect.logWarning(
        `the cleanup lease ${target.lease} does not exist, so every instance runs the cleanup on its own; create it ` +
          `with: ${leaseTable(target.lease)}`
      ).pipe(Effect.annotateLogs("service", "effect-session/PgSessionStore"))
    }
    for (const [name, statement] of q.indexes) {
      if (present.has(name)) continue
      yield* Effect.logWarning(
        `table ${target.quoted} lacks the index ${name}, which the store's queries use; build it without blocking ` +
          `writes: ${statement.replace("CREATE INDEX IF NOT EXISTS", "CREATE INDEX CONCURRENTLY IF NOT EXISTS")}`
      ).pipe(Effect.annotateLogs("service", "effect-session/PgSessionStore"))
    }
    return lease?.present === true
  })

/**
 * Checks the table, creating or upgrading it unless `createTable` is false. Locks nothing beyond the catalog: the
 * column and index changes run only when something is missing. Returns whether the cleanup lease exists (instances
 * then share the cleanup).
 */
export const init = (
  sql: PgClient.PgClient,
  target: Target,
  options: { readonly createTable: boolean; readonly durability: Durability; readonly startupTimeout: number }
): Effect.Effect<{ readonly coordinated: boolean }, InvalidConfig | SessionStoreError> =>
  Effect.gen(function*() {
    const q = schema(target.quoted, target.table, options.durability)
    if (target.schema !== undefined) {
      const [found] = yield* sql.unsafe<{ present: boolean }>(q.schemaExists, [target.schema]).withoutTransform
      if (found?.present !== true) {
        return yield* new InvalidConfig({ option: "tableName", reason: `schema "${target.schema}" does not exist` })
      }
    }
    const missing = options.createTable
      ? yield* upgradeWithin(sql, q, target, options.startupTimeout)
      : missingColumns(yield* presentColumns(sql, q, target))
    const problem = unusable(q, target, missing)
    if (problem !== undefined) return yield* problem
    const coordinated = options.createTable ? true : yield* checkIndexes(sql, q, target)
    yield* checkPersistence(sql, q, target, options.durability)
    return { coordinated }
  }).pipe(
    Effect.catchTag("SqlError", (cause) => Effect.fail(new SessionStoreError({ operation: "init", cause })))
  )
