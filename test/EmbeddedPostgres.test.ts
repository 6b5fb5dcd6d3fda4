import { EmbeddedPostgres } from "../src/index.js"
import { withSchema } from "./support/database.js"
import { postgresSuite } from "./support/postgres.js"

postgresSuite("PgSessionStore on EmbeddedPostgres", withSchema(EmbeddedPostgres.layer()))
