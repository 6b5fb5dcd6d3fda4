/** The embedded engine, after installing its optional peers as the README says. */
import { Effect, Layer } from "effect"
import { PgSessionStore, SessionStore } from "effect-session"
import * as EmbeddedPostgres from "effect-session/EmbeddedPostgres"

Effect.gen(function*() {
  const store = yield* SessionStore.SessionStore
  const key = yield* store.generate({ value: "embedded" })
  console.log(`embedded OK: ${(yield* store.get(key)).value}`)
}).pipe(
  Effect.provide(PgSessionStore.layer().pipe(Layer.provide(EmbeddedPostgres.layer()))),
  Effect.runPromise
).catch((error) => {
  console.error(error)
  process.exit(1)
})
