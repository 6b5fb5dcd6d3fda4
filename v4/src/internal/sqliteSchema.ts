/**
 * The session table of `SqliteSessionStore`: its name checked and quoted, and its creation or in-place upgrade when
 * the layer starts. The table is only read unless something is missing; then the columns and indexes are added in
 * one `BEGIN IMMEDIATE` transaction, so processes starting together take turns (and the later ones find it done).
 */
import { Effect } from "effect"
import { InvalidConfig, SessionStoreError } from "../SessionError.js"
import type { Database } from "./sqliteDriver.js"
import type { Run } from "./sqliteRun.js"
import { columns, original, schema } from "./sqliteStatements.js"

/** A table: quoted, and bare. */
export interface Target {
  readonly quoted: string
  readonly table: string
}

const identifier = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/** Validates a table name (an identifier, not one SQLite reserves) and quotes it. */
export const quoteTableName = (tableName: string): Effect.Effect<Target, InvalidConfig> =>
  identifier.test(tableName) && !tableName.toLowerCase().startsWith("sqlite_")
    ? Effect.succeed({ quoted: `"${tableName}"`, table: tableName })
    : Effect.fail(
      new InvalidConfig({
        option: "tableName",
        reason: `${JSON.stringify(tableName.slice(0, 200))} is not an identifier of at most 63 characters ` +
          `([A-Za-z_][A-Za-z0-9_]*, not starting with sqlite_)`
      })
    )

/** The DDL the layer would run, for teams that manage their schema themselves. */
export const ddl = (target: Target): string => {
  const q = schema(target.quoted, target.table)
  return [q.createTable, ...q.indexes.map(([, statement]) => statement)].map((statement) => `${statement};\n`).join("")
}

type Schema = ReturnType<typeof schema>

/** What the table lacks: columns (all of them when there is no table) and indexes. */
const lacking = (db: Database, q: Schema, target: Target) => {
  const names = (sql: string) =>
    new Set((db.prepare(sql).all(target.table) as ReadonlyArray<{ readonly name: string }>).map((row) => row.name))
  const present = names(q.tableColumns)
  const indexes = names(q.tableIndexes)
  return {
    columns: columns.map(([name]) => name).filter((name) => !present.has(name)),
    indexes: q.indexes.filter(([name]) => !indexes.has(name)).map(([, statement]) => statement)
  }
}

/** Creates the table, adds the columns it lacks and its indexes, in one transaction; returns the lacking columns. */
const upgrade = (db: Database, q: Schema, target: Target): ReadonlyArray<string> =>
  db.transaction(() => {
    db.exec(q.createTable)
    const missing = lacking(db, q, target)
    if (missing.columns.some((name) => original.has(name))) return missing.columns
    for (const name of missing.columns) db.exec(q.addColumn(name))
    for (const statement of missing.indexes) db.exec(statement)
    return []
  }).immediate()

/** Why the table cannot serve sessions, given the columns it lacks; nothing if it can. */
const unusable = (q: Schema, target: Target, missing: ReadonlyArray<string>): InvalidConfig | undefined => {
  const problem = (option: string, reason: string) =>
    new InvalidConfig({ option, reason: `table ${target.quoted} ${reason}` })
  if (missing.length === columns.length) {
    return problem("tableName", "does not exist (createTable is false; see SqliteSessionStore.schemaSql)")
  }
  if (missing.some((name) => original.has(name))) {
    return problem("tableName", `is not a session table: it lacks ${missing.join(", ")}`)
  }
  return missing.length === 0 ? undefined : problem(
    "createTable",
    `lacks column(s) ${missing.join(", ")}; add them with: ${missing.map(q.addColumn).join("; ")} ` +
      `(or build the layer with createTable: true, which does it)`
  )
}

/**
 * Checks the table, creating or upgrading it unless `createTable` is false. Takes the write lock only when
 * something is missing, retried through `run` while another connection holds it.
 */
export const init = (
  db: Database,
  run: Run,
  target: Target,
  options: { readonly createTable: boolean }
): Effect.Effect<void, InvalidConfig | SessionStoreError> => {
  const q = schema(target.quoted, target.table)
  return run(() => {
    const missing = lacking(db, q, target)
    const complete = missing.columns.length === 0 && missing.indexes.length === 0
    return complete || !options.createTable ? missing.columns : upgrade(db, q, target)
  }).pipe(
    Effect.mapError((cause) => new SessionStoreError({ operation: "init", cause })),
    Effect.flatMap((missing) => {
      const problem = unusable(q, target, missing)
      return problem === undefined ? Effect.void : Effect.fail(problem)
    })
  )
}
