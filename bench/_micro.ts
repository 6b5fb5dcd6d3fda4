import { HttpApp, HttpRouter, HttpServerResponse } from "@effect/platform"
import { Effect, Layer, ManagedRuntime, Schema } from "effect"
import { MemorySessionStore, SessionMiddleware, SessionStore } from "../src/index.js"

const Data = Schema.Struct({ user: Schema.NullOr(Schema.String), visits: Schema.Number })
const Sessions = SessionMiddleware.make({ schema: Data, initial: { user: null, visits: 0 } })
const read = HttpRouter.empty.pipe(
  HttpRouter.post("/login", Effect.flatMap(Sessions.CurrentSession, (s) => s.set({ user: "bench", visits: 0 })).pipe(Effect.as(HttpServerResponse.text("ok")))),
  HttpRouter.get("/read", Effect.map(Effect.flatMap(Sessions.CurrentSession, (s) => s.get), (d) => HttpServerResponse.text(`${d.user}:${d.visits}`))),
)
const plain = HttpRouter.empty.pipe(HttpRouter.get("/read", HttpServerResponse.text("bench:0")))
const runtime = ManagedRuntime.make(MemorySessionStore.layer({ cleanupInterval: 0 }))
const withSessions = HttpApp.toWebHandlerRuntime(await runtime.runtime())(read.pipe(HttpRouter.use(Sessions.middleware)) as any)
const without = HttpApp.toWebHandlerRuntime(await runtime.runtime())(plain as any)
const login = await withSessions(new Request("http://x/login", { method: "POST" }))
const cookie = login.headers.get("set-cookie")!.split(";")[0]!
const store = await runtime.runPromise(SessionStore.SessionStore)
const key = cookie.split("=")[1]!
const N = 20000
for (const [name, handler, c] of [["plain", without, ""], ["sessions", withSessions, cookie], ["plain", without, ""], ["sessions", withSessions, cookie]] as const) {
  const t0 = performance.now()
  for (let i = 0; i < N; i++) { const r = await handler(new Request("http://x/read", { headers: { cookie: c } })); await r.text() }
  console.log(name, ((performance.now() - t0) * 1000 / N).toFixed(1), "µs/request")
}
const t0 = performance.now()
for (let i = 0; i < N; i++) await runtime.runPromise(store.get(key))
console.log("store.get alone (memory, runPromise)", ((performance.now() - t0) * 1000 / N).toFixed(1), "µs")
await runtime.dispose()
