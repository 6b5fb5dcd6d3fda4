/** The SQL of `PgSessionStore`: one statement per primitive, bind parameters only. */
import { createHash } from "node:crypto"

/** Epoch milliseconds (a float8 parameter) as a timestamptz. */
const ts = (param: string) => `to_timestamp(${param}::float8 / 1000)`

/** A timestamptz column as epoch milliseconds. */
const ms = (column: string) => `(extract(epoch FROM ${column}) * 1000)::float8`

/** Joined into every write when `durability: "relaxed"`: one round trip, and only this transaction is relaxed. */
const relaxedCommit = `(SELECT set_config('synchronous_commit', 'off', true)) AS relaxed`

/** A session's identity: the id of the key it was created with (a row of 0.2 has none: its own id). */
const family = "coalesce(family, id)"

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
  ["last_seen_at", "timestamptz"],
  ["family", "bytea"],
  ["ended", "boolean NOT NULL DEFAULT false"]
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

/**
 * The lease of the background cleanup, beside the session table (`lease` quoted): one row, the last claim's time (the
 * claimer's clock, epoch ms) and a count of claims.
 */
export const leaseTable = (lease: string) => `CREATE TABLE IF NOT EXISTS ${lease} (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  last_run float8 NOT NULL,
  runs bigint NOT NULL DEFAULT 0
)`

/**
 * Claims the cleanup at `$1` unless another claim is less than `$2` ms older (or more than `$2` ms newer: a clock
 * far ahead, or a test's, must not block every other instance); a row back when claimed.
 */
const claimCleanup = (lease: string) => `INSERT INTO ${lease} AS l (singleton, last_run, runs) VALUES (true, $1::float8, 1)
    ON CONFLICT (singleton) DO UPDATE SET last_run = EXCLUDED.last_run, runs = l.runs + 1
    WHERE l.last_run <= $1::float8 - $2::float8 OR l.last_run > $1::float8 + $2::float8
    RETURNING runs::text AS runs`

/** The DDL and catalog queries of one table (`t` quoted, `table` its bare last part). */
export const schema = (t: string, table: string, durability: "full" | "relaxed" | "unlogged") => {
  const expiresIndex = indexName(table, "expires_at_idx")
  const subjectIndex = indexName(table, "subject_idx")
  const familyIndex = indexName(table, "family_idx")
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
      [subjectIndex, `CREATE INDEX IF NOT EXISTS "${subjectIndex}" ON ${t} (subject, audience) WHERE subject IS NOT NULL`],
      [familyIndex, `CREATE INDEX IF NOT EXISTS "${familyIndex}" ON ${t} ((${family}))`]
    ] as ReadonlyArray<readonly [string, string]>,
    relationExists: `SELECT to_regclass($1) IS NOT NULL AS present`,
    schemaExists: `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS present`,
    tableColumns: `SELECT attname::text AS name FROM pg_attribute
    WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`,
    tableIndexes: `SELECT c.relname::text AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = to_regclass($1)`,
    persistence: `SELECT relpersistence AS persistence FROM pg_class WHERE oid = to_regclass($1)`,
    setPersistence: `ALTER TABLE ${t} SET ${durability === "unlogged" ? "UNLOGGED" : "LOGGED"}`
  }
}

/** What a row (`s.` when `row` is "s.") is at `now`: why a write to it is refused, or 'live'. */
const state = (now: string, row = "") =>
  `CASE WHEN ${row}ended THEN 'missing' WHEN ${row}rotated THEN 'rotated' WHEN ${row}expires_at < ${ts(now)} THEN 'expired'
    ELSE 'live' END`

/** The statements of one session's rows: reads and conditional writes (`t` quoted; `from` joins the relaxed commit). */
const rowStatements = (t: string, relaxed: boolean, from: string) => {
  /** The outcome of a conditional write `write` (a CTE returning a row when it wrote) to the row `$1` at `now`. */
  const outcome = (write: string, now: string) => `WITH found AS (SELECT ${state(now)} AS state FROM ${t} WHERE id = $1),
    written AS (${write} RETURNING 1)
    SELECT CASE WHEN EXISTS (SELECT 1 FROM written) THEN 'done' ELSE coalesce((SELECT state FROM found), 'missing') END
      AS outcome`
  /** Sets `assignments` (and `last_seen_at`) on the row `$1` if it is live at `now` and not rotated. */
  const changeLive = (assignments: string, now: string) =>
    outcome(
      `UPDATE ${t} SET ${assignments}, last_seen_at = ${ts(now)}${from}
      WHERE id = $1 AND expires_at >= ${ts(now)} AND NOT rotated AND NOT ended`,
      now
    )
  /** The compare-and-set of a value, with `alsoSet` (more assignments) in the same statement. */
  const compareAndSet = (alsoSet: string) => `UPDATE ${t}
    SET value = $3, expires_at = COALESCE(${ts("$4")}, expires_at), last_seen_at = ${ts("$5")},
      version = version + 1${alsoSet}${from}
    WHERE id = $1 AND version = $2::bigint AND expires_at >= ${ts("$5")} AND NOT rotated AND NOT ended
    RETURNING version::text AS version`
  return {
    find: `SELECT value, ${ms("expires_at")} AS expires_at, version::text AS version, rotated, subject, audience,
      ${family} AS family FROM ${t} WHERE id = $1 AND NOT ended`,
    insert: `INSERT INTO ${t} (id, family, value, expires_at, created_at, last_seen_at, subject, audience, metadata)
    SELECT $1::bytea, $1::bytea, $2::text, ${ts("$3")}, ${ts("$4")}, ${ts("$4")}, $5::text, $6::text, $7::text${from}`,
    // The row is created if there is none at all; replaced if it is live; otherwise left as it is.
    upsert: outcome(
      `INSERT INTO ${t} AS s (id, family, value, expires_at, created_at, last_seen_at)
      SELECT $1::bytea, $1::bytea, $2::text, ${ts("$3")}, ${ts("$4")}, ${ts("$4")}${from}
      ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,
        last_seen_at = EXCLUDED.last_seen_at, version = s.version + (s.value IS DISTINCT FROM EXCLUDED.value)::int
      WHERE NOT s.rotated AND NOT s.ended AND s.expires_at >= EXCLUDED.last_seen_at`,
      "$4"
    ),
    touch: changeLive(`expires_at = ${ts("$2")}`, "$3"),
    compareAndSet: compareAndSet(""),
    // The same, setting the owner in the same statement ($6 subject, $7 audience, $8 metadata).
    compareAndSetOwner: compareAndSet(", subject = $6, audience = $7, metadata = $8"),
    // One statement, so one transaction: the new row (same family) exists only if the old one was marked
    // rotated, and a failure of either leaves both as they were.
    // $8: whether to set the owner ($9 subject, $10 audience, $11 metadata) or carry the old row's over.
    rotate: `WITH old AS (
      UPDATE ${t} SET rotated = true, expires_at = LEAST(expires_at, ${ts("$6")}), version = version + 1
      WHERE id = $1 AND version = $2::bigint AND expires_at >= ${ts("$7")} AND NOT rotated AND NOT ended
      RETURNING subject, audience, metadata, ${family} AS family
    ), fresh AS (
      INSERT INTO ${t} (id, family, value, expires_at, created_at, last_seen_at, subject, audience, metadata)
      SELECT $3::bytea, old.family, $4::text, ${ts("$5")}, ${ts("$7")}, ${ts("$7")},
        CASE WHEN $8::boolean THEN $9::text ELSE old.subject END,
        CASE WHEN $8::boolean THEN $10::text ELSE old.audience END,
        CASE WHEN $8::boolean THEN $11::text ELSE old.metadata END
      FROM old${relaxed ? `, ${relaxedCommit}` : ""}
      RETURNING 1
    )
    SELECT count(*)::int AS rotated FROM fresh`,
    setOwner: changeLive("subject = $2, audience = $3, metadata = $4", "$5"),
  }
}

/**
 * The statements that serve many sessions' callers at once (see pgBatch): a read of many rows, and many
 * compare-and-sets in one statement (one transaction), each row written or not on its own.
 */
const batchStatements = (t: string, relaxed: boolean) => ({
  /** The rows of the ids `$1` that exist and have not ended, each with its id. */
  findMany: `SELECT id, value, ${ms("expires_at")} AS expires_at, version::text AS version, rotated, subject, audience,
      ${family} AS family FROM ${t} WHERE id = ANY($1::bytea[]) AND NOT ended`,
  /**
   * `upsert` of every row of the arrays `$1`…`$4`, ids distinct, in one transaction: one outcome per id (`done`, or
   * why not, as `upsert` says; `busy` for a row another transaction holds, which it skips rather than wait for: that
   * caller's upsert runs alone). Existing rows are locked in id order first.
   */
  upsertMany: `WITH input AS (
      SELECT * FROM unnest($1::bytea[], $2::text[], $3::float8[], $4::float8[]) AS i(id, value, expires_at, now)
    ), found AS MATERIALIZED (
      SELECT s.id, ${state("i.now", "s.")} AS state FROM ${t} s JOIN input i ON s.id = i.id
    ), locked AS MATERIALIZED (
      SELECT id FROM ${t} WHERE id IN (SELECT id FROM found) ORDER BY id FOR UPDATE SKIP LOCKED
    ), written AS (
      INSERT INTO ${t} AS s (id, family, value, expires_at, created_at, last_seen_at)
      SELECT i.id, i.id, i.value, ${ts("i.expires_at")}, ${ts("i.now")}, ${ts("i.now")}
      FROM input i${relaxed ? `, ${relaxedCommit}` : ""}
      WHERE i.id NOT IN (SELECT id FROM found) OR i.id IN (SELECT id FROM locked)
      ORDER BY i.id
      ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,
        last_seen_at = EXCLUDED.last_seen_at, version = s.version + (s.value IS DISTINCT FROM EXCLUDED.value)::int
      WHERE NOT s.rotated AND NOT s.ended AND s.expires_at >= EXCLUDED.last_seen_at
      RETURNING s.id
    )
    SELECT i.id, CASE WHEN i.id IN (SELECT id FROM written) THEN 'done'
      WHEN i.id IN (SELECT id FROM found) AND i.id NOT IN (SELECT id FROM locked) THEN 'busy'
      ELSE coalesce((SELECT state FROM found WHERE found.id = i.id), 'missing') END AS outcome
    FROM input i`,
  /**
   * `compareAndSet` (with `compareAndSetOwner` where `$6` is true) of every row of the arrays `$1`…`$9`, ids
   * distinct, in one transaction. It never waits for a row lock: a row another transaction holds is skipped and
   * returned with a null version (busy: its caller's write runs alone, as it would without batching), so one locked
   * row never holds up the others, and the batch can take part in no deadlock. Returns the ids written, with their
   * new versions, then the busy ids; an id in neither was refused (another version, expired, rotated or ended).
   */
  compareAndSetMany: `WITH input AS (
      SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::text[], $4::float8[], $5::float8[], $6::boolean[],
        $7::text[], $8::text[], $9::text[]) AS i(id, version, value, expires_at, now, owned, subject, audience, metadata)
    ), candidates AS MATERIALIZED (
      SELECT s.id FROM ${t} s JOIN input i ON s.id = i.id
      WHERE s.version = i.version AND s.expires_at >= ${ts("i.now")} AND NOT s.rotated AND NOT s.ended
    ), locked AS MATERIALIZED (
      SELECT s.id FROM ${t} s JOIN input i ON s.id = i.id
      WHERE s.id IN (SELECT id FROM candidates) AND s.version = i.version AND s.expires_at >= ${ts("i.now")}
        AND NOT s.rotated AND NOT s.ended
      ORDER BY s.id FOR UPDATE OF s SKIP LOCKED
    ), written AS (
      UPDATE ${t} s SET value = i.value, expires_at = COALESCE(${ts("i.expires_at")}, s.expires_at),
        last_seen_at = ${ts("i.now")}, version = s.version + 1,
        subject = CASE WHEN i.owned THEN i.subject ELSE s.subject END,
        audience = CASE WHEN i.owned THEN i.audience ELSE s.audience END,
        metadata = CASE WHEN i.owned THEN i.metadata ELSE s.metadata END
      FROM input i${relaxed ? `, ${relaxedCommit}` : ""}
      WHERE s.id = i.id AND s.id IN (SELECT id FROM locked) AND s.version = i.version
        AND s.expires_at >= ${ts("i.now")} AND NOT s.rotated AND NOT s.ended
      RETURNING s.id, s.version::text AS version
    )
    SELECT id, version FROM written
    UNION ALL SELECT id, NULL FROM candidates WHERE id NOT IN (SELECT id FROM locked)`
})

/** The statements over sessions: listing, paging, revocation, clearing, cleanup (`t` quoted). */
const sessionStatements = (t: string, relaxed: boolean, from: string) => {
  /** The columns a listing returns; times as epoch ms; the id is the session's family. */
  const info = `${family} AS id, subject, audience, metadata, ${ms("created_at")} AS created_at,
      ${ms("expires_at")} AS expires_at, ${ms("coalesce(last_seen_at, created_at)")} AS last_seen_at`
  /** What ending a row leaves: a tombstone that keeps its expiry and family, refusing every write until then. */
  const tombstone = `ended = true, value = '', subject = NULL, audience = NULL, metadata = NULL, version = version + 1`
  /**
   * Two CTEs: `doomed` locks the live rows `where` selects in id order (as a batch of writes locks its rows, so the
   * two never deadlock), `gone` ends them, returning `returning`.
   */
  const endLocked = (where: string, returning: string) => `doomed AS MATERIALIZED (
      SELECT id FROM ${t} WHERE ${where} AND NOT ended ORDER BY id FOR UPDATE
    ), gone AS (
      UPDATE ${t} SET ${tombstone}${from} WHERE id IN (SELECT id FROM doomed) AND NOT ended
      RETURNING ${returning}
    )`
  return {
    list: `SELECT ${info} FROM ${t}
    WHERE subject = $1 AND ($2::text IS NULL OR audience = $2) AND expires_at >= ${ts("$3")} AND NOT rotated
      AND NOT ended
    ORDER BY last_seen_at DESC NULLS LAST LIMIT $4`,
    page: `SELECT ${info} FROM ${t}
    WHERE ($1::bytea IS NULL OR ${family} > $1) AND expires_at >= ${ts("$2")} AND NOT rotated AND NOT ended
    ORDER BY ${family} LIMIT $3`,
    /**
     * Ends every row of the family `$1` (if `$2` is null, or one of its current rows belongs to the subject `$2`).
     * A rotation committing while this runs adds a row this statement's snapshot cannot see: `current` is then 0
     * (it only ended rotated rows), and the caller runs it again, which sees the new row.
     */
    revokeFamily: `WITH allowed AS (
      SELECT $2::text IS NULL OR EXISTS (
        SELECT 1 FROM ${t} WHERE ${family} = $1 AND subject = $2 AND NOT ended AND NOT rotated
      ) AS ok
    ), ${endLocked(`${family} = $1 AND (SELECT ok FROM allowed)`, "rotated")}
    SELECT count(*)::int AS ended, (count(*) FILTER (WHERE NOT rotated))::int AS current FROM gone`,
    /**
     * Ends every row of the families whose current row belongs to the subject `$1` (audience `$2`), except the
     * family `$3`; only among the families `$5` when given (a second pass). One row per family ended: whether its
     * current row was among them, and live at `$4`.
     */
    revokeSubject: `WITH families AS (
      SELECT DISTINCT ${family} AS family FROM ${t}
      WHERE subject = $1 AND ($2::text IS NULL OR audience = $2) AND NOT ended AND NOT rotated
        AND ($3::bytea IS NULL OR ${family} <> $3) AND ($5::bytea[] IS NULL OR ${family} = ANY($5::bytea[]))
    ), ${endLocked(`${family} IN (SELECT family FROM families)`, `${family} AS family, rotated, expires_at >= ${ts("$4")} AS live`)}
    SELECT family, bool_or(NOT rotated) AS current, bool_or(NOT rotated AND live) AS live FROM gone GROUP BY family`,
    /** Ends the session of the key `$1`: its whole family, or only itself when it was rotated away. */
    clear: `WITH target AS (SELECT ${family} AS family, rotated FROM ${t} WHERE id = $1 AND NOT ended),
    ${endLocked(`(id = $1 OR (${family} = (SELECT family FROM target) AND NOT (SELECT rotated FROM target)))`, "rotated")}
    SELECT (SELECT family FROM target) AS family, (SELECT rotated FROM target) AS rotated,
      (count(*) FILTER (WHERE NOT rotated))::int AS current FROM gone`,
    deleteExpired: `WITH doomed AS (
      SELECT id FROM ${t} WHERE expires_at < ${ts("$1")} ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
    ), gone AS (DELETE FROM ${t}${relaxed ? ` USING ${relaxedCommit}` : ""} WHERE id IN (SELECT id FROM doomed) RETURNING 1)
    SELECT count(*)::int AS deleted FROM gone`
  }
}

/**
 * Every statement the store runs on one table (`t` quoted); with `lease` (its cleanup lease, quoted), the claim of
 * the cleanup shared by the instances.
 */
export const statements = (t: string, durability: "full" | "relaxed" | "unlogged", lease?: string) => {
  const relaxed = durability === "relaxed"
  /** Joined into an UPDATE (`FROM`), or into an INSERT's SELECT: only the session write's commit is relaxed. */
  const from = relaxed ? ` FROM ${relaxedCommit}` : ""
  return {
    ...rowStatements(t, relaxed, from),
    ...batchStatements(t, relaxed),
    ...sessionStatements(t, relaxed, from),
    claimCleanup: lease === undefined ? undefined : claimCleanup(lease)
  }
}

/** The statements of one table. */
export type Statements = ReturnType<typeof statements>
