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
  ["rotated", "boolean NOT NULL DEFAULT false"],
  ["subject", "text"],
  ["audience", "text"],
  ["metadata", "text"],
  ["last_seen_at", "timestamptz"]
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
  const subjectIndex = indexName(table, "subject_idx")
  /** The columns a listing returns; times as epoch ms. */
  const info = `id, subject, audience, metadata, (extract(epoch FROM created_at) * 1000)::float8 AS created_at,
      (extract(epoch FROM expires_at) * 1000)::float8 AS expires_at,
      (extract(epoch FROM coalesce(last_seen_at, created_at)) * 1000)::float8 AS last_seen_at`
  /**
   * Sets `assignments` (and `last_seen_at`) on the row `$1` if it is live at `now` and not rotated; returns whether
   * it `changed`, and the row's `rotated` (null when there is no row), which tell why not.
   */
  const changeLive = (assignments: string, now: string) => `WITH current_row AS (SELECT rotated FROM ${t} WHERE id = $1),
    changed AS (UPDATE ${t} SET ${assignments}, last_seen_at = ${ts(now)}${from}
      WHERE id = $1 AND expires_at >= ${ts(now)} AND NOT rotated RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM changed) AS changed, (SELECT rotated FROM current_row) AS rotated`
  /** The compare-and-set of a value, with `alsoSet` (more assignments) in the same statement. */
  const compareAndSet = (alsoSet: string) => `UPDATE ${t}
    SET value = $3, expires_at = COALESCE(${ts("$4")}, expires_at), last_seen_at = ${ts("$5")},
      version = version + 1${alsoSet}${from}
    WHERE id = $1 AND version = $2::bigint AND expires_at >= ${ts("$5")} AND NOT rotated
    RETURNING version::text AS version`
  return {
    createTable: `CREATE ${durability === "unlogged" ? "UNLOGGED " : ""}TABLE IF NOT EXISTS ${t} (\n  ${
      columns.map(([name, type]) => `${name} ${type}`).join(",\n  ")
    }\n)`,
    addColumn: (name: string) => {
      const column = columns.find(([column]) => column === name)!
      return `ALTER TABLE ${t} ADD COLUMN IF NOT EXISTS ${column[0]} ${column[1]}`
    },
    upgradable: (name: string) => !original.has(name),
    indexes: [
      [expiresIndex, `CREATE INDEX IF NOT EXISTS "${expiresIndex}" ON ${t} (expires_at)`],
      [subjectIndex, `CREATE INDEX IF NOT EXISTS "${subjectIndex}" ON ${t} (subject, audience) WHERE subject IS NOT NULL`]
    ] as ReadonlyArray<readonly [string, string]>,
    schemaExists: `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS present`,
    tableColumns: `SELECT attname::text AS name FROM pg_attribute
    WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`,
    tableIndexes: `SELECT c.relname::text AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = to_regclass($1)`,
    persistence: `SELECT relpersistence AS persistence FROM pg_class WHERE oid = to_regclass($1)`,
    setPersistence: `ALTER TABLE ${t} SET ${durability === "unlogged" ? "UNLOGGED" : "LOGGED"}`,
    find: `SELECT value, (extract(epoch FROM expires_at) * 1000)::float8 AS expires_at, version::text AS version,
      rotated, subject, audience FROM ${t} WHERE id = $1`,
    insert: `INSERT INTO ${t} (id, value, expires_at, created_at, last_seen_at, subject, audience, metadata)
    ${relaxed
      ? `SELECT $1::bytea, $2::text, ${ts("$3")}, ${ts("$4")}, ${ts("$4")}, $5::text, $6::text, $7::text${from}`
      : `VALUES ($1, $2, ${ts("$3")}, ${ts("$4")}, ${ts("$4")}, $5, $6, $7)`}`,
    upsert: `INSERT INTO ${t} AS s (id, value, expires_at, created_at) ${row("$1", "$2", "$3", "$4")}
    ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,
      created_at = CASE WHEN s.expires_at < EXCLUDED.created_at THEN EXCLUDED.created_at ELSE s.created_at END,
      last_seen_at = EXCLUDED.created_at, version = s.version + 1
    WHERE NOT s.rotated
    RETURNING 1 AS written`,
    touch: changeLive(`expires_at = ${ts("$2")}`, "$3"),
    compareAndSet: compareAndSet(""),
    // The same, setting the owner in the same statement ($6 subject, $7 audience, $8 metadata).
    compareAndSetOwner: compareAndSet(", subject = $6, audience = $7, metadata = $8"),
    // One statement, so one transaction: the new row exists only if the old one was marked rotated, and a
    // failure of either leaves both as they were.
    // $8: whether to set the owner ($9 subject, $10 audience, $11 metadata) or carry the old row's over.
    rotate: `WITH old AS (
      UPDATE ${t} SET rotated = true, expires_at = LEAST(expires_at, ${ts("$6")}), version = version + 1
      WHERE id = $1 AND version = $2::bigint AND expires_at >= ${ts("$7")} AND NOT rotated
      RETURNING subject, audience, metadata
    ), fresh AS (
      INSERT INTO ${t} (id, value, expires_at, created_at, last_seen_at, subject, audience, metadata)
      SELECT $3::bytea, $4::text, ${ts("$5")}, ${ts("$7")}, ${ts("$7")},
        CASE WHEN $8::boolean THEN $9::text ELSE old.subject END,
        CASE WHEN $8::boolean THEN $10::text ELSE old.audience END,
        CASE WHEN $8::boolean THEN $11::text ELSE old.metadata END
      FROM old${relaxed ? `, ${relaxedCommit}` : ""}
      RETURNING 1
    )
    SELECT count(*)::int AS rotated FROM fresh`,
    setOwner: changeLive("subject = $2, audience = $3, metadata = $4", "$5"),
    list: `SELECT ${info} FROM ${t}
    WHERE subject = $1 AND ($2::text IS NULL OR audience = $2) AND expires_at >= ${ts("$3")} AND NOT rotated
    ORDER BY last_seen_at DESC NULLS LAST LIMIT $4`,
    page: `SELECT ${info} FROM ${t}
    WHERE ($1::bytea IS NULL OR id > $1) AND expires_at >= ${ts("$2")} AND NOT rotated
    ORDER BY id LIMIT $3`,
    revoke: `DELETE FROM ${t}${using} WHERE id = $1 AND ($2::text IS NULL OR subject = $2) RETURNING 1 AS revoked`,
    revokeSubject: `WITH gone AS (DELETE FROM ${t}${using}
      WHERE subject = $1 AND ($2::text IS NULL OR audience = $2) AND ($3::bytea IS NULL OR id <> $3)
      RETURNING (NOT rotated AND expires_at >= ${ts("$4")}) AS live)
    SELECT count(*) FILTER (WHERE live)::int AS revoked FROM gone`,
    remove: `DELETE FROM ${t}${using} WHERE id = $1`,
    deleteExpiredBatch: `WITH doomed AS (
      SELECT id FROM ${t} WHERE expires_at < ${ts("$1")} ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
    ), gone AS (DELETE FROM ${t}${using} WHERE id IN (SELECT id FROM doomed) RETURNING 1)
    SELECT count(*)::int AS deleted FROM gone`
  }
}
