/** The SQLite store, after installing better-sqlite3 as the README says: one round of every kind of call. */
import { Effect } from "effect"
import { SessionStore } from "effect-session"
import * as SqliteSessionStore from "effect-session/SqliteSessionStore"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const directory = mkdtempSync(join(tmpdir(), "consumer-sqlite-"))

Effect.gen(function*() {
  const store = yield* SessionStore.SessionStore
  const key = yield* store.generate({ value: "0", subject: "user-1", expiry: "1 minute" })
  yield* store.modify(key, (n) => String(Number(n) + 1))
  const rotation = yield* store.rotate(key, (n) => n)
  if ((yield* Effect.flip(store.set(key, "x")))._tag !== "Rotated") throw new Error("rotated key accepted a write")
  const [listed] = yield* store.list("user-1")
  yield* store.revoke(listed!.id)
  if ((yield* Effect.flip(store.get(rotation.key)))._tag !== "NotFound") throw new Error("revoked session still read")
  const ddl = yield* SqliteSessionStore.schemaSql()
  console.log(`sqlite OK: ${rotation.value}, revoked, ${ddl.split(";").length - 1} DDL statements`)
}).pipe(
  Effect.provide(SqliteSessionStore.layer({ filename: join(directory, "sessions.db") })),
  Effect.runPromise
).then(
  () => rmSync(directory, { recursive: true, force: true }),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
