import { ServerOwnedPool, ServerPgClient, withSchema } from "./support/database.js"
import { postgresSuite } from "./support/postgres.js"

// The general path: any PgClient, through @effect/sql.
postgresSuite("PgSessionStore on the PostgreSQL server", withSchema(ServerPgClient))
// The fast path: the pool this library builds (named prepared statements, discarding timed-out connections).
postgresSuite("PgSessionStore on the PostgreSQL server, owned pool", withSchema(ServerOwnedPool()))
