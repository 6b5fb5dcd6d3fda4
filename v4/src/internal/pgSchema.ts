/**
 * The session table of `PgSessionStore`: its name checked and quoted, and its creation or in-place upgrade when the
 * layer starts (under an advisory lock, so instances starting together take turns, and a lock timeout).
 */
import type { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import { InvalidConfig, SessionStoreError } from "../SessionError.js"
import { columns, schema } from "./pgStatements.js"

/** A table: quoted, its bare last part, its schema if qualified. */
export interface Target {
  readonly quoted: string
  readonly table: string
  readonly schema: string | undefined
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
  return Effect.succeed({
    quoted: parts.map((part) => `"${part}"`).join("."),
    table: parts.at(-1)!,
    schema: parts.length === 2 ? parts[0] : undefined
  })
}

/** The DDL the layer would run, for teams that manage their schema themselves. */
export const ddl = (target: Target, durability: Durability): string => {
  const q = schema(target.quoted, target.table, durability)
  return [q.createTable, ...q.indexes.map(([, statement]) => statement)].map((statement) => `${statement};\n`).join("")
}

type Schema = ReturnType<typeof schema>

const missingColumns = (present: ReadonlySet<string>) => columns.map(([name]) => name).filter((n) => !present.has(n))

const presentColumns = (sql: PgClient.PgClient, q: Schema, target: Target) =>
  Effect.map(
    sql.unsafe<{ name: string }>(q.tableColumns, [target.quoted]).withoutTransform,
    (rows) => new Set(rows.map((row) => row.name))
  )

/**
 * Creates the table, its missing columns (a catalog-only change) and indexes, in one transaction under an
 * advisory lock; returns the columns still missing (those of a table that is not a session table).
 */
const upgrade = (sql: PgClient.PgClient, q: Schema, target: Target) =>
  sql.withTransaction(Effect.gen(function*() {
    yield* sql.unsafe("SELECT pg_advisory_xact_lock(hashtext($1))", [`effect-session:${target.quoted}`])
    yield* sql.unsafe("SET LOCAL lock_timeout = '10s'")
    yield* sql.unsafe(q.createTable)
    const missing = missingColumns(yield* presentColumns(sql, q, target))
    if (missing.some((name) => !q.upgradable(name))) return missing
    for (const name of missing) yield* sql.unsafe(q.addColumn(name))
    const indexes = new Set(
      (yield* sql.unsafe<{ name: string }>(q.tableIndexes, [target.quoted]).withoutTransform).map((i) => i.name)
    )
    for (const [name, statement] of q.indexes) if (!indexes.has(name)) yield* sql.unsafe(statement)
    return []
  }))

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

/** Warns about the indexes a table managed by its team lacks, with the statement that builds each without blocking. */
const checkIndexes = (sql: PgClient.PgClient, q: Schema, target: Target) =>
  Effect.gen(function*() {
    const present = new Set(
      (yield* sql.unsafe<{ name: string }>(q.tableIndexes, [target.quoted]).withoutTransform).map((i) => i.name)
    )
    for (const [name, statement] of q.indexes) {
      if (present.has(name)) continue
      yield* Effect.logWarning(
        `table ${target.quoted} lacks the index ${name}, which the store's queries use; build it without blocking ` +
          `writes: ${statement.replace("CREATE INDEX IF NOT EXISTS", "CREATE INDEX CONCURRENTLY IF NOT EXISTS")}`
      ).pipe(Effect.annotateLogs("service", "effect-session/PgSessionStore"))
    }
  })

/**
 * Checks the table, creating or upgrading it unless `createTable` is false. Locks nothing beyond the catalog: the
 * column and index changes run only when something is missing.
 */
export const init = (
  sql: PgClient.PgClient,
  target: Target,
  options: { readonly createTable: boolean; readonly durability: Durability }
): Effect.Effect<void, InvalidConfig | SessionStoreError> =>
  Effect.gen(function*() {
    const q = schema(target.quoted, target.table, options.durability)
    if (target.schema !== undefined) {
      const [found] = yield* sql.unsafe<{ present: boolean }>(q.schemaExists, [target.schema]).withoutTransform
      if (found?.present !== true) {
        return yield* new InvalidConfig({ option: "tableName", reason: `schema "${target.schema}" does not exist` })
      }
    }
    const missing = options.createTable
      ? yield* upgrade(sql, q, target)
      : missingColumns(yield* presentColumns(sql, q, target))
    const problem = unusable(q, target, missing)
    if (problem !== undefined) return yield* problem
    if (!options.createTable) yield* checkIndexes(sql, q, target)
    yield* checkPersistence(sql, q, target, options.durability)
  }).pipe(
    Effect.catchTag("SqlError", (cause) => Effect.fail(new SessionStoreError({ operation: "init", cause })))
  )
