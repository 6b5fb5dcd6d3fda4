import { Layer } from "effect"
import { SqliteSessionStore } from "../src/index.js"
import { conformance } from "./support/conformance.js"
import * as Sqlite from "./support/sqlite.js"

conformance("SqliteSessionStore", Layer.empty, (options) =>
  SqliteSessionStore.layer({ ...options, filename: Sqlite.filename, tableName: Sqlite.table() }))
