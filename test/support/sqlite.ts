/**
 * SQLite test files: one temporary directory per test run (removed when the process exits), a database file in it,
 * and a fresh table name for each store.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const directory = mkdtempSync(join(tmpdir(), "effect-session-sqlite-"))
process.once("exit", () => rmSync(directory, { recursive: true, force: true }))

/** A path in this run's directory. */
export const path = (name: string) => join(directory, name)

/** The database file of this run. */
export const filename = path("sessions.db")

let tables = 0

/** A table name no other store of this run uses. */
export const table = () => `sessions_${++tables}`
