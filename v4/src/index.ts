/**
 * effect-session: server-side HTTP sessions for Effect.
 *
 * @since 0.1.0
 */

/**
 * The in-memory store.
 *
 * @since 0.1.0
 */
export * as MemorySessionStore from "./MemorySessionStore.js"

/**
 * The PostgreSQL store on `@effect/sql-pg`.
 *
 * @since 0.1.0
 */
export * as PgSessionStore from "./PgSessionStore.js"

/**
 * Typed errors of the stores.
 *
 * @since 0.1.0
 */
export * as SessionError from "./SessionError.js"

/**
 * Session keys: generation, validation, hashing.
 *
 * @since 0.1.0
 */
export * as SessionKey from "./SessionKey.js"

/**
 * The `SessionStore` service (the `Session.S.Future` parallel).
 *
 * @since 0.1.0
 */
export * as SessionStore from "./SessionStore.js"

/**
 * The `Session_cohttp` parallel: session records, cookie headers.
 *
 * @since 0.1.0
 */
export * as HttpSession from "./HttpSession.js"

/**
 * Sessions for `@effect/platform` servers: the middleware and `CurrentSession`.
 *
 * @since 0.1.0
 */
export * as SessionMiddleware from "./SessionMiddleware.js"

/**
 * Cross-origin request forgery protection (Go's `CrossOriginProtection`): a guard for HttpApp, HttpApi and
 * HttpLayerRouter.
 *
 * @since 0.3.0
 */
export * as CsrfProtection from "./CsrfProtection.js"

/**
 * Testing handlers that use a session, in-process: a client with a cookie jar, seeded sessions, `TestClock` expiry.
 *
 * @since 0.3.0
 */
export * as SessionTesting from "./SessionTesting.js"

/**
 * The SQLite store, for apps on a single host (better-sqlite3, an optional peer, loaded only when a layer is built).
 *
 * @since 0.3.0
 */
export * as SqliteSessionStore from "./SqliteSessionStore.js"

/**
 * The Redis store (standalone, Cluster, Sentinel) on `ioredis`, an optional peer loaded only when a store connects.
 *
 * @since 0.3.0
 */
export * as RedisSessionStore from "./RedisSessionStore.js"
