/** The SQL of `PgSessionStore`: one statement per operation, bind parameters only. */

/** Epoch milliseconds (a float8 parameter) as a timestamptz. */
const ts = (param: string) => `to_timestamp(${param}::float8 / 1000)`

/** Joined into every write when `durability: "relaxed"`: one round trip, and only this transaction is relaxed. */
const relaxedCommit = `(SELECT set_config('synchronous_commit', 'off', true)) AS relaxed`

/** Every statement of the PostgreSQL store, for one table. Times are epoch milliseconds as float8. */
export const statements = (t: string, table: string, durability: "full" | "relaxed" | "unlogged") => {
  const relaxed = durability === "relaxed"
  const from = relaxed ? ` FROM ${relaxedCommit}` : ""
  const using = relaxed ? ` USING ${relaxedCommit}` : ""
  const row = (id: string, value: string, expires: string, created: string) =>
    relaxed
      ? `SELECT ${id}::bytea, ${value}::text, ${ts(expires)}, ${ts(created)}${from}`
      : `VALUES (${id}, ${value}, ${ts(expires)}, ${ts(created)})`
  return {
    createTable: `CREATE ${durability === "unlogged" ? "UNLOGGED " : ""}TABLE IF NOT EXISTS ${t} (
    id bytea PRIMARY KEY,
    value text NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    version bigint NOT NULL DEFAULT 0
  )`,
    createIndex: `CREATE INDEX IF NOT EXISTS "${`${table}_expires_at_idx`.slice(0, 63)}" ON ${t} (expires_at)`,
    persistence: `SELECT relpersistence AS persistence FROM pg_class WHERE oid = $1::regclass`,
    setPersistence: `ALTER TABLE ${t} SET ${durability === "unlogged" ? "UNLOGGED" : "LOGGED"}`,
    probe: `SELECT id, value, expires_at, created_at, version FROM ${t} LIMIT 0`,
    find: `SELECT value, (extract(epoch FROM expires_at) * 1000)::float8 AS expires_at, version::text AS version
    FROM ${t} WHERE id = $1`,
    insert: `INSERT INTO ${t} (id, value, expires_at, created_at) ${row("$1", "$2", "$3", "$4")}`,
    upsert: `INSERT INTO ${t} AS s (id, value, expires_at, created_at) ${row("$1", "$2", "$3", "$4")}
    ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,
      created_at = CASE WHEN s.expires_at < EXCLUDED.created_at THEN EXCLUDED.created_at ELSE s.created_at END,
      version = s.version + 1`,
    touch: `WITH current_row AS (SELECT 1 FROM ${t} WHERE id = $1),
    touched AS (UPDATE ${t} SET expires_at = ${ts("$2")}${from}
      WHERE id = $1 AND expires_at >= ${ts("$3")} RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM touched) AS touched, EXISTS (SELECT 1 FROM current_row) AS present`,
    compareAndSet: `UPDATE ${t}
    SET value = $3, expires_at = COALESCE(${ts("$4")}, expires_at), version = version + 1${from}
    WHERE id = $1 AND version = $2::bigint AND expires_at >= ${ts("$5")} RETURNING 1`,
    remove: `DELETE FROM ${t}${using} WHERE id = $1`,
    deleteExpiredBatch: `WITH doomed AS (
      SELECT id FROM ${t} WHERE expires_at < ${ts("$1")} ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
    ), gone AS (DELETE FROM ${t}${using} WHERE id IN (SELECT id FROM doomed) RETURNING 1)
    SELECT count(*)::int AS deleted FROM gone`
  }
}
