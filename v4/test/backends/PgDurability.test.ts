/**
 * The conformance suite on the PostgreSQL server with `durability: "relaxed"` and `"unlogged"`, on both paths (any
 * PgClient, and the owned pool). `npm run test:backends`; `npm test` runs the default durability.
 */
import { ServerOwnedPool, ServerPgClient, withSchema } from "../support/database.js"
import { durabilitySuites } from "../support/postgres.js"

durabilitySuites("PgSessionStore on the PostgreSQL server", withSchema(ServerPgClient))
durabilitySuites("PgSessionStore on the PostgreSQL server, owned pool", withSchema(ServerOwnedPool()))
