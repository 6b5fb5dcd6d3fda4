import { ServerPgClient, withSchema } from "./support/database.js"
import { postgresSuite } from "./support/postgres.js"

postgresSuite("PgSessionStore on the PostgreSQL server", withSchema(ServerPgClient))
