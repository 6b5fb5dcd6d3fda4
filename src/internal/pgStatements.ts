/** The SQL of `PgSessionStore`: one statement per operation, bind parameters only. */
import { createHash } from "node:crypto"

/** Epoch milliseconds (a float8 parameter) as a timestamptz. */
const ts = (param: string) => `to_timestamp(${param}::float8 / 1000)`

/** Joined into every write when `durability: "relaxed"`: one round trip, and only this transaction is relaxed. */
const relaxedCommit = `(SELECT set_config('synchronous_commit', 'off', true)) AS relaxed`

/** The columns a table needs, with the DDL that adds each to a table created by an earlier version. */
export const columns = [
  ["id", "bytea PRIMARY KEY"],
  ["value", "text NOT NULL"],
  ["expires_at", "timestamptz NOT NULL"],
  ["created_at", "timestamptz NOT NULL"],
  ["version", "bigint NOT NULL DEFAULT 0"],
  ["rotated", "boolean NOT NULL DEFAULT false"]
] as const

/** Columns of 0.1 tables; the rest are added in place (a catalog-only change: no rewrite). */
const original = new Set(["id", "value", "expires_at", "created_at", "version"])

/**
 * An index name of at most 63 bytes that never collides with the table's own name (PostgreSQL truncates longer
 * identifiers, and a truncated `<63 chars>_expires_at_idx` would equal the table name, silently skipping the index).
 */
export const indexName = (table: string, suffix: string) => {
  const full = `${table}_${suffix}`
  if (Buffer.byteLength(full) <= 63) return full
  const digest = createHash("sha256").update(table).digest("hex").slice(0, 8)
  return `${table.slice(0, 63 - suffix.length - digest.length - 2)}_${digest}_${suffix}`
}

/** Every statement of the PostgreSQL store, for one table (`t` quoted, `table` its bare last part). */
export const statements = (t: string, table: string, durability: "full" | "relaxed" | "unlogged") => {
  const relaxed = durability === "relaxed"
  const from = relaxed ? ` FROM ${relaxedCommit}` : ""
  const using = relaxed ? ` USING ${relaxedCommit}` : ""
  const row = (id: string, value: string, expires: string, created: string) =>
    relaxed
      ? `SELECT ${id}::bytea, ${value}::text, ${ts(expires)}, ${ts(created)}${from}`
      : `VALUES (${id}, ${value}, ${ts(expires)}, ${ts(created)})`
  const expiresIndex = indexName(table, "expires_at_idx")
  return {
    createTable: `CREATE ${durability === "unlogged" ? "UNLOGGED " : ""}TABLE IF NOT EXISTS ${t} (\n  ${
      columns.map(([name, type]) => `${name} ${type}`).join(",\n  ")
    }\n)`,
    addColumn: (name: string) => {
      const column = columns.find(([column]) => column === name)!
      return `ALTER TABLE ${t} ADD COLUMN IF NOT EXISTS ${column[0]} ${column[1]}`
    },
    upgradable: (name: string) => !original.has(name),
    createIndex: `CREATE INDEX IF NOT EXISTS "${expiresIndex}" ON ${t} (expires_at)`,
    indexName: expiresIndex,
    schemaExists: `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS present`,
    tableColumns: `SELECT attname::text AS name FROM pg_attribute
    WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`,
    tableIndexes: `SELECT c.relname::text AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = to_regclass($1)`,
    persistence: `SELECT relpersistence AS persistence FROM pg_class WHERE oid = to_regclass($1)`,
    setPersistence: `ALTER TABLE ${t} SET ${durability === "unlogged" ? "UNLOGGED" : "LOGGED"}`,
    find: `SELECT value, (extract(epoch FROM expires_at) * 1000)::float8 AS expires_at, version::text AS version,
      rotated FROM ${t} WHERE id = $1`,
    insert: `INSERT INTO ${t} (id, value, expires_at, created_at) ${row("$1", "$2", "$3", "$4")}`,
    upsert: `INSERT INTO ${t} AS s (id, value, expires_at, created_at) ${row("$1", "$2", "$3", "$4")}
    ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,
      created_at = CASE WHEN s.expires_at < EXCLUDED.created_at THEN EXCLUDED.created_at ELSE s.created_at END,
      version = s.version + 1
    WHERE NOT s.rotated
    RETURNING 1 AS written`,
    touch: `WITH current_row AS (SELECT rotated FROM ${t} WHERE id = $1),
    touched AS (UPDATE ${t} SET expires_at = ${ts("$2")}${from}
      WHERE id = $1 AND expires_at >= ${ts("$3")} AND NOT rotated RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM touched) AS touched, (SELECT rotated FROM current_row) AS rotated`,
    compareAndSet: `UPDATE ${t}
    SET value = $3, expires_at = COALESCE(${ts("$4")}, expires_at), version = version + 1${from}
    WHERE id = $1 AND version = $2::bigint AND expires_at >= ${ts("$5")} AND NOT rotated
    RETURNING version::text AS version`,
    // One statement, so one transaction: the new row exists only if the old one was marked rotated, and a
    // failure of either leaves both as they were.
    rotate: `WITH old AS (
      UPDATE ${t} SET rotated = true, expires_at = LEAST(expires_at, ${ts("$6")}), version = version + 1
      WHERE id = $1 AND version = $2::bigint AND expires_at >= ${ts("$7")} AND NOT rotated
      RETURNING 1
    ), fresh AS (
      INSERT INTO ${t} (id, value, expires_at, created_at)
      SELECT $3::bytea, $4::text, ${ts("$5")}, ${ts("$7")} FROM old${relaxed ? `, ${relaxedCommit}` : ""}
      RETURNING 1
    )
    SELECT count(*)::int AS rotated FROM fresh`,
    remove: `DELETE FROM ${t}${using} WHERE id = $1`,
    deleteExpiredBatch: `WITH doomed AS (
      SELECT id FROM ${t} WHERE expires_at < ${ts("$1")} ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
    ), gone AS (DELETE FROM ${t}${using} WHERE id IN (SELECT id FROM doomed) RETURNING 1)
    SELECT count(*)::int AS deleted FROM gone`
  }
}
