/**
 * A short walk through the store on the embedded engine: generate, set, get, let one expire, clean up.
 * Run with `npm run walkthrough` (no PostgreSQL server needed). Set DATABASE_URL to use a server instead.
 */
import { Console, Duration, Effect, Layer, Redacted } from "effect"
import * as EmbeddedPostgres from "../src/EmbeddedPostgres.js" // "effect-session/EmbeddedPostgres"
import { PgSessionStore, SessionStore } from "../src/index.js" // "effect-session"

const program = Effect.gen(function*() {
  const store = yield* SessionStore.SessionStore
  yield* Console.log(`default period: ${Duration.format(yield* store.defaultPeriod)}`)

  const key = yield* store.generate({ value: JSON.stringify({ user: "ada" }) })
  yield* Console.log(`generated a session; its key (43 base64url chars) goes in a cookie: ${key.slice(0, 6)}…`)

  yield* store.set(key, JSON.stringify({ user: "ada", visits: 1 }))
  const got = yield* store.get(key)
  yield* Console.log(`get → value ${got.value}, expires in ${Duration.format(got.expiresIn)}`)

  yield* store.modify(key, (value) => {
    const data = JSON.parse(value)
    return JSON.stringify({ ...data, visits: data.visits + 1 })
  })
  yield* Console.log(`modify (atomic read-modify-write) → ${(yield* store.get(key)).value}`)

  const shortLived = yield* store.generate({ value: "brief", expiry: "1 second" })
  yield* Console.log(`generated a session that expires in 1 second; waiting 1.1 s…`)
  yield* Effect.sleep("1100 millis")
  const outcome = yield* store.get(shortLived).pipe(
    Effect.map(() => "still there?!"),
    Effect.catchTags({ Expired: () => Effect.succeed("Expired"), NotFound: () => Effect.succeed("NotFound") })
  )
  yield* Console.log(`get after expiry → ${outcome}`)
  yield* Console.log(`deleteExpired removed ${yield* store.deleteExpired} expired session(s)`)

  yield* store.clear(key)
  const cleared = yield* Effect.flip(store.get(key))
  yield* Console.log(`clear, then get → ${cleared._tag}`)
  yield* Console.log(`a malformed key never reaches the database → ${(yield* Effect.flip(store.get("not-a-key")))._tag}`)
})

const tableName = "walkthrough_sessions"
const store = process.env.DATABASE_URL
  ? PgSessionStore.layerPool({ url: Redacted.make(process.env.DATABASE_URL), tableName })
  : PgSessionStore.layer({ tableName }).pipe(Layer.provide(EmbeddedPostgres.layer()))

Console.log(process.env.DATABASE_URL ? "using DATABASE_URL" : "using the embedded PostgreSQL engine (PGlite)").pipe(
  Effect.andThen(program),
  Effect.provide(store),
  Effect.runPromise
).catch((error) => {
  console.error(error)
  process.exit(1)
})
