import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { Effect, Option, Redacted, Schema } from "effect"
import { SessionMiddleware, SessionStore } from "../../src/index.js"
import { Barrier, toApp } from "./testApp.js"

export const Data = Schema.Struct({
  user: Schema.NullOr(Schema.String),
  visits: Schema.Number,
  a: Schema.optional(Schema.String),
  b: Schema.optional(Schema.String),
  note: Schema.optional(Schema.String)
})

/** The sealed session of the test app. */
export class SealedTestSession extends SessionMiddleware.SealedTag<SealedTestSession>()("test/SealedSession", {
  schema: Data,
  initial: { user: null, visits: 0 }
}) {}

export const secret = (fill: string) => Redacted.make(fill.repeat(32))

const query = (name: string) =>
  Effect.map(HttpServerRequest.ParsedSearchParams, (params) => Option.fromNullishOr(params[name] as string | undefined))

const show = Effect.gen(function*() {
  const s = yield* SealedTestSession
  return yield* HttpServerResponse.json({ data: yield* s.get, flashes: yield* s.flashes, isNew: yield* s.isNew })
})

const tooLarge = (error: SessionMiddleware.SessionTooLarge) =>
  HttpServerResponse.json({ tooLarge: { bytes: error.bytes, maxBytes: error.maxBytes, limit: error.limit } }, { status: 413 })

const setNote = Effect.gen(function*() {
  const s = yield* SealedTestSession
  const bytes = Number(Option.getOrElse(yield* query("bytes"), () => "10"))
  yield* s.update((d) => ({ ...d, note: "x".repeat(bytes) }))
  return yield* show
})

/** The routes the sealed HTTP tests drive. */
export const makeSealedApp = () =>
  [
    HttpRouter.route("GET", "/", Effect.flatMap(SealedTestSession, (s) => s.update((d) => ({ ...d, visits: d.visits + 1 }))).pipe(Effect.andThen(show))),
    HttpRouter.route("GET", "/peek", show),
    HttpRouter.route("POST", "/login", Effect.gen(function*() {
      const s = yield* SealedTestSession
      const name = Option.getOrElse(yield* query("name"), () => "ada")
      yield* s.regenerate
      yield* s.set({ ...(yield* s.get), user: name })
      yield* s.flash("notice", `Welcome, ${name}`)
      if (Option.isSome(yield* query("remember"))) yield* s.rememberMe(true)
      return yield* show
    })),
    HttpRouter.route("POST", "/logout", Effect.gen(function*() {
      const s = yield* SealedTestSession
      yield* s.dropPrivileges
      yield* s.set({ ...(yield* s.get), user: null })
      yield* s.flash("notice", "Logged out")
      return HttpServerResponse.text("bye")
    })),
    HttpRouter.route("POST", "/destroy", Effect.flatMap(SealedTestSession, (s) => s.destroy).pipe(Effect.as(HttpServerResponse.text("gone")))),
    HttpRouter.route("POST", "/destroy-then-flash", Effect.gen(function*() {
      const s = yield* SealedTestSession
      yield* s.destroy
      yield* s.flash("notice", "Start again")
      return HttpServerResponse.text("restarted")
    })),
    HttpRouter.route("POST", "/remember", Effect.gen(function*() {
      const s = yield* SealedTestSession
      yield* s.rememberMe(Option.getOrElse(yield* query("on"), () => "1") === "1")
      return yield* show
    })),
    HttpRouter.route("GET", "/token", Effect.flatMap(SealedTestSession, (s) => s.csrfToken).pipe(Effect.map((t) => HttpServerResponse.text(t)))),
    // Sets a note of `bytes` characters: /note answers a SessionTooLarge itself (413 with its fields), /note-uncaught
    // leaves it to the error's own response.
    HttpRouter.route("POST", "/note", Effect.catchTag(setNote, "SessionTooLarge", tooLarge)),
    HttpRouter.route("POST", "/note-uncaught", setNote),
    HttpRouter.route("POST", "/flash", Effect.gen(function*() {
      const s = yield* SealedTestSession
      const bytes = Number(Option.getOrElse(yield* query("bytes"), () => "10"))
      yield* s.flash("big", "y".repeat(bytes))
      return HttpServerResponse.text("flashed")
    }).pipe(Effect.catchTag("SessionTooLarge", tooLarge))),
    HttpRouter.route("GET", "/fail", Effect.gen(function*() {
      const s = yield* SealedTestSession
      yield* s.set({ ...(yield* s.get), user: "written before the failure" })
      return yield* Effect.fail(new Error("handler failed"))
    })),
    HttpRouter.route("POST", "/bad-request", Effect.gen(function*() {
      const s = yield* SealedTestSession
      yield* s.flash("error", "wrong password")
      return HttpServerResponse.text("no", { status: 400 })
    })),
    HttpRouter.route("GET", "/overlap", Effect.gen(function*() {
      const s = yield* SealedTestSession
      const barrier = yield* Barrier
      const field = Option.getOrElse(yield* query("field"), () => "a") as "a" | "b"
      yield* s.set({ ...(yield* s.get), [field]: Option.getOrElse(yield* query("value"), () => "x") })
      yield* s.update((d) => ({ ...d, visits: d.visits + 1 }))
      yield* barrier.wait(2)
      return HttpServerResponse.text(field)
    })),
    // Whether anything in the handler's context is a session store.
    HttpRouter.route("GET", "/store", Effect.serviceOption(SessionStore.SessionStore).pipe(
      Effect.map((store) => HttpServerResponse.text(Option.isSome(store) ? "a store" : "no store"))
    ))
  ] as const

/** Serves the sealed test app behind the sealed middleware configured with `options`, in the current scope. */
export const serveSealed = (options: Partial<SessionMiddleware.SealedOptions> = {}) =>
  toApp(makeSealedApp()).pipe(
    Effect.flatMap((app) => app.pipe(SealedTestSession.middleware, HttpServer.serveEffect())),
    Effect.provide(SealedTestSession.layer({ ...options, secrets: options.secrets ?? [secret("s")] }))
  )
