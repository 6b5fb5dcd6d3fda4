/**
 * The SQL of `SqliteSessionStore` on one table (`t`, quoted): bind parameters only. Times are epoch milliseconds
 * computed by the store (never SQLite's clock), flags are 0 or 1. A primitive is one statement, or a few that
 * `sqliteBackend.ts` runs in one `BEGIN IMMEDIATE` transaction.
 */

/** The columns of the table, with their definitions. */
export const columns = [
  ["id", "BLOB PRIMARY KEY"],
  ["family", "BLOB NOT NULL"],
  ["value", "TEXT NOT NULL"],
  ["expires_at", "INTEGER NOT NULL"],
  ["created_at", "INTEGER NOT NULL"],
  ["version", "INTEGER NOT NULL DEFAULT 0"],
  ["rotated", "INTEGER NOT NULL DEFAULT 0"],
  ["ended", "INTEGER NOT NULL DEFAULT 0"],
  ["subject", "TEXT"],
  ["audience", "TEXT"],
  ["metadata", "TEXT"],
  ["last_seen_at", "INTEGER"]
] as const

/** The columns a table needs from its creation; a later version adds the others in place. */
export const original: ReadonlySet<string> = new Set(["id", "family", "value", "expires_at", "created_at", "version"])

/** The DDL of one table (`t` quoted, `table` bare). */
export const schema = (t: string, table: string) => ({
  createTable: `CREATE TABLE IF NOT EXISTS ${t} (\n  ${columns.map(([name, type]) => `${name} ${type}`).join(",\n  ")}\n)`,
  addColumn: (name: string) => `ALTER TABLE ${t} ADD COLUMN ${name} ${columns.find(([column]) => column === name)![1]}`,
  indexes: [
    [`${table}_expires_at_idx`, `CREATE INDEX IF NOT EXISTS "${table}_expires_at_idx" ON ${t} (expires_at)`],
    [
      `${table}_subject_idx`,
      `CREATE INDEX IF NOT EXISTS "${table}_subject_idx" ON ${t} (subject, audience) WHERE subject IS NOT NULL`
    ],
    [`${table}_family_idx`, `CREATE INDEX IF NOT EXISTS "${table}_family_idx" ON ${t} (family)`]
  ] as ReadonlyArray<readonly [string, string]>,
  tableColumns: `SELECT name FROM pragma_table_info(?)`,
  tableIndexes: `SELECT name FROM pragma_index_list(?)`
})

/** Every statement the store runs on one table (`t` quoted). */
export const statements = (t: string) => {
  /** The row is live at the time bound to `now` and can be written: not ended, not rotated, not expired. */
  const writable = (now: string) => `ended = 0 AND rotated = 0 AND expires_at >= ${now}`
  /** What ending a row leaves: a tombstone that keeps its expiry and family, refusing every write until then. */
  const tombstone = `ended = 1, value = '', subject = NULL, audience = NULL, metadata = NULL, version = version + 1`
  /** The columns a listing returns, named as `InfoRow` names them; the id is the session's family. */
  const info = `family AS id, subject, audience, metadata, created_at AS createdAt, expires_at AS expiresAt,
      coalesce(last_seen_at, created_at) AS lastSeenAt`
  /** The compare-and-set of a value, with `alsoSet` (more assignments, bound after the first three) in it. */
  const compareAndSet = (alsoSet: string) => `UPDATE ${t}
    SET value = ?, expires_at = coalesce(?, expires_at), last_seen_at = ?, version = version + 1${alsoSet}
    WHERE id = ? AND version = ? AND ${writable("?")} RETURNING version`
  return {
    find: `SELECT value, expires_at, version, rotated, subject, audience, family FROM ${t} WHERE id = ? AND ended = 0`,
    /** Why a conditional write changed nothing: the row's flags and expiry (no row: it is missing). */
    state: `SELECT ended, rotated, expires_at FROM ${t} WHERE id = ?`,
    insert: `INSERT INTO ${t} (id, family, value, expires_at, created_at, last_seen_at, subject, audience, metadata)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    // Created if there is no row at all; replaced if it is live; otherwise left as it is (no change).
    upsert: `INSERT INTO ${t} (id, family, value, expires_at, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at,
      last_seen_at = excluded.last_seen_at, version = version + (value IS NOT excluded.value)
    WHERE ${writable("excluded.last_seen_at")}`,
    touch: `UPDATE ${t} SET expires_at = ?, last_seen_at = ? WHERE id = ? AND ${writable("?")}`,
    setOwner: `UPDATE ${t} SET subject = ?, audience = ?, metadata = ?, last_seen_at = ? WHERE id = ? AND ${writable("?")}`,
    compareAndSet: compareAndSet(""),
    compareAndSetOwner: compareAndSet(", subject = ?, audience = ?, metadata = ?"),
    /** The old half of a rotation: marked rotated, its expiry lowered (never raised); what the new row inherits. */
    rotateOld: `UPDATE ${t} SET rotated = 1, expires_at = min(expires_at, ?), version = version + 1
    WHERE id = ? AND version = ? AND ${writable("?")} RETURNING family, subject, audience, metadata`,
    list: `SELECT ${info} FROM ${t}
    WHERE subject = @subject AND (@audience IS NULL OR audience = @audience) AND ${writable("@now")}
    ORDER BY last_seen_at DESC LIMIT @limit`,
    page: `SELECT ${info} FROM ${t} WHERE (@after IS NULL OR family > @after) AND ${writable("@now")}
    ORDER BY family LIMIT @limit`,
    /** Whether the current row of the family `?` belongs to the subject `?`. */
    owns: `SELECT 1 AS owned FROM ${t} WHERE family = ? AND subject = ? AND ended = 0 AND rotated = 0 LIMIT 1`,
    endFamily: `UPDATE ${t} SET ${tombstone} WHERE family = ? AND ended = 0`,
    endKey: `UPDATE ${t} SET ${tombstone} WHERE id = ? AND ended = 0`,
    /** The session of a key, for `clear`. */
    target: `SELECT family, rotated FROM ${t} WHERE id = ? AND ended = 0`,
    /**
     * The families whose current row belongs to the subject (and audience), except `@except`; with whether that
     * row is live at `@now` (the count `revokeSubject` returns).
     */
    subjectFamilies: `SELECT family, max(rotated = 0 AND expires_at >= @now) AS live FROM ${t}
    WHERE ended = 0 AND family IN (
      SELECT family FROM ${t}
      WHERE subject = @subject AND (@audience IS NULL OR audience = @audience) AND ended = 0 AND rotated = 0
        AND (@except IS NULL OR family <> @except)
    ) GROUP BY family`,
    deleteExpired: `DELETE FROM ${t} WHERE id IN (SELECT id FROM ${t} WHERE expires_at < ? ORDER BY expires_at LIMIT ?)`
  }
}

/** The statements of one table. */
export type Statements = ReturnType<typeof statements>
