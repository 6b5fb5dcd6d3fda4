/**
 * An embedded PostgreSQL engine for demos, tests and single-node apps: PGlite (Postgres compiled to WASM), served
 * by `@electric-sql/pglite-socket` on 127.0.0.1 with a free port, and a `PgClient` connected to it. Because it
 * speaks the wire protocol, the very same `PgSessionStore` code path runs on it as on a PostgreSQL server.
 *
 * Imported from `effect-session/EmbeddedPostgres` only (the root entry never loads PGlite); it needs the optional
 * peers `@electric-sql/pglite` and `@electric-sql/pglite-socket`.
 *
 * @since 0.1.0
 */
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import type { SqlClient } from "@effect/sql"
import type { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Schema } from "effect"
import { createHash } from "node:crypto"
import { readdir, readFile, rename, unlink, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { positiveInteger } from "./internal/options.js"
import * as PgPool from "./internal/pgPool.js"
import { InvalidConfig } from "./SessionError.js"

/**
 * Options of the embedded engine.
 *
 * @since 0.1.0
 * @category options
 */
export interface Options {
  /** A directory to keep the database in, so it survives a restart. Default: in memory. */
  readonly dataDir?: string | undefined
  /** Connections the socket server accepts. PGlite runs one query at a time; this bounds the queue. Default 4. */
  readonly maxConnections?: number | undefined
  /** Size of the `PgClient` pool; must not exceed `maxConnections`. Default: `maxConnections`. */
  readonly poolSize?: number | undefined
}

/**
 * PGlite's settings for a session store: its smallest memory (it grows on demand) and small buffers, since session
 * rows are small. About 300 MB less resident memory than PGlite's defaults.
 */
const engineOptions = {
  initialMemory: 128 * 1024 * 1024,
  postgresqlconf: "shared_buffers = 16MB\nwork_mem = 1MB\nmaintenance_work_mem = 8MB\nwal_buffers = 256kB"
}

const cachePrefix = "effect-session-pglite-"

/**
 * Where a freshly initialized, empty cluster of the installed PGlite is kept, keyed by its build (a digest of its
 * WebAssembly, so a reinstall of the same version finds it) and the settings it was made with.
 */
const emptyClusterCache = async (): Promise<string> => {
  const entry = fileURLToPath(import.meta.resolve("@electric-sql/pglite"))
  const wasm = await readFile(join(dirname(entry), "pglite.wasm"))
  const build = createHash("sha256").update(wasm).update(engineOptions.postgresqlconf).digest("hex").slice(0, 16)
  return join(tmpdir(), `${cachePrefix}${build}.tar.gz`)
}

/** Removes the cached clusters of other PGlite builds (each ~4.5 MB). */
const removeOtherCaches = async (keep: string) => {
  const names = await readdir(tmpdir()).catch(() => [] as Array<string>)
  await Promise.all(names
    .filter((name) => name.startsWith(cachePrefix) && name.endsWith(".tar.gz") && join(tmpdir(), name) !== keep)
    .map((name) => unlink(join(tmpdir(), name)).catch(() => {})))
}

/**
 * A fresh in-memory cluster. Initializing one (initdb) takes PGlite several seconds and much memory, so the first
 * start keeps an empty cluster in the temporary directory and later starts load it (about a second).
 */
const inMemory = async (): Promise<PGlite> => {
  const cache = await emptyClusterCache().catch(() => undefined)
  if (cache !== undefined) {
    const saved = await readFile(cache).catch(() => undefined)
    if (saved !== undefined) {
      const loaded = await PGlite.create("memory://", { ...engineOptions, loadDataDir: new Blob([saved]) }).catch(() => undefined)
      if (loaded !== undefined) return loaded
    }
  }
  const db = await PGlite.create("memory://", engineOptions)
  if (cache !== undefined) {
    // Written aside and renamed: concurrent starts never read a half-written cluster.
    const written = `${cache}.${process.pid}.tmp`
    await db.dumpDataDir("gzip")
      .then(async (dump) => writeFile(written, Buffer.from(await dump.arrayBuffer())))
      .then(() => rename(written, cache))
      .then(() => removeOtherCaches(cache))
      .catch(() => unlink(written).catch(() => {}))
  }
  return db
}

/** Wire messages of an extended-protocol batch before its Sync: Parse, Bind, Describe, Execute, Close, Flush. */
const batchTypes = new Set([0x50, 0x42, 0x44, 0x45, 0x43, 0x48])

/** Sync, as a connection would send it. */
const sync = new Uint8Array([0x53, 0, 0, 0, 4])

/**
 * pglite-socket (0.2) queues each wire message of a connection on its own, so the extended-protocol messages of two
 * connections (Parse, Bind, Execute, Sync) can interleave in PGlite's one session: one connection's Bind then binds
 * the other's statement and reads its rows. Its queue keeps a connection's messages together only inside a
 * transaction; here its view of PGlite says "in a transaction" from a connection's first message of a batch to its
 * Sync as well, so a batch runs whole. A connection gone in the middle of one gets its Sync sent for it.
 */
const keepBatchesTogether = (server: PGLiteSocketServer, db: PGlite) => {
  const queue = (server as unknown as { queryQueue?: { db?: unknown } }).queryQueue
  if (queue?.db !== db) return
  let midBatch = false
  queue.db = {
    isInTransaction: () => midBatch || db.isInTransaction(),
    runExclusive: <A>(f: () => Promise<A>) => db.runExclusive(f),
    execProtocolRawStream: async (message: Uint8Array, options: Parameters<PGlite["execProtocolRawStream"]>[1]) => {
      const result = await db.execProtocolRawStream(message, options)
      midBatch = batchTypes.has(message[0]!)
      return result
    },
    // Only run by the queue for a connection that left in the middle of a transaction (a ROLLBACK), or of a batch.
    exec: async (query: string) => {
      if (midBatch) {
        midBatch = false
        await db.runExclusive(() => db.execProtocolRawStream(sync, { onRawData: () => {} }))
      }
      return db.isInTransaction() ? db.exec(query) : []
    }
  }
}

/**
 * The engine failed to start.
 *
 * @since 0.1.0
 * @category errors
 */
export class EmbeddedPostgresError extends Schema.TaggedError<EmbeddedPostgresError>("effect-session/EmbeddedPostgresError")("EmbeddedPostgresError", {
  cause: Schema.Defect
}) {
  override get message() {
    return `embedded PostgreSQL failed to start: ${this.cause instanceof Error ? this.cause.message : this.cause}`
  }
}

/**
 * Starts PGlite and its socket server (both stopped when the layer's scope closes) and provides a `PgClient`
 * connected to it.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { PgSessionStore } from "effect-session"
 * import * as EmbeddedPostgres from "effect-session/EmbeddedPostgres"
 *
 * const Sessions = PgSessionStore.layer().pipe(Layer.provide(EmbeddedPostgres.layer({ dataDir: ".data/sessions" })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, InvalidConfig | EmbeddedPostgresError> =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const maxConnections = yield* positiveInteger("maxConnections", options.maxConnections ?? 4)
    const poolSize = yield* positiveInteger("poolSize", options.poolSize ?? maxConnections)
    if (poolSize > maxConnections) {
      return yield* new InvalidConfig({
        option: "poolSize",
        reason: `${poolSize} exceeds the server's maxConnections (${maxConnections}); extra connections would be refused`
      })
    }
    const db = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => options.dataDir === undefined ? inMemory() : PGlite.create(options.dataDir, engineOptions),
        catch: (cause) => new EmbeddedPostgresError({ cause })
      }),
      (db) => Effect.tryPromise(() => db.close()).pipe(Effect.ignore)
    )
    const server = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections })
          keepBatchesTogether(server, db)
          await server.start()
          return server
        },
        catch: (cause) => new EmbeddedPostgresError({ cause })
      }),
      (server) => Effect.tryPromise(() => server.stop()).pipe(Effect.ignore)
    )
    const port = Number(server.getServerConn().split(":").at(-1))
    // The hardened pool of PgSessionStore.layerPool, so the store takes its fast path here too.
    return PgPool.layerClient({
      host: "127.0.0.1",
      port,
      database: "postgres",
      username: "postgres",
      maxConnections: poolSize,
      // PGlite runs one query at a time for every connection: waits are longer than on a server.
      connectTimeout: "10 seconds",
      statementTimeout: 0,
      lockTimeout: 0,
      // Every socket connection shares PGlite's one session, so names prepared by one would collide in another.
      preparedStatements: false,
      // PGlite runs one statement at a time: pipelining gains nothing there.
      pipelinedReads: 0
    }).pipe(Layer.mapError((cause) => new EmbeddedPostgresError({ cause })))
  }))
