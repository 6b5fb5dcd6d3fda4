/**
 * The demo app: log in with a name, a per-session visit counter, flash messages after login and logout,
 * "log out" and "log out and forget me". Exported so tests and benchmarks run the very same app.
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Option, Schema } from "effect"
import { SessionMiddleware } from "../../src/index.js"

/** What the demo keeps in a session, and the tag its handlers reach it by. Options come with its layer. */
export class DemoSession extends SessionMiddleware.Tag<DemoSession>()("demo/Session", {
  schema: Schema.Struct({ user: Schema.NullOr(Schema.String), visits: Schema.Number }),
  initial: { user: null, visits: 0 }
}) {}

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]!)

const page = (body: string) =>
  HttpServerResponse.html(`<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>effect-session demo</title>
  <style>
    body { font-family: system-ui, sans-serif; max-width: 34rem; margin: 3rem auto; padding: 0 1rem; color: #222; }
    .flash { background: #e8f4ea; border: 1px solid #9c9; padding: .6rem .8rem; border-radius: .4rem; }
    .counter { font-size: 2.5rem; font-weight: 600; }
    form { margin: .6rem 0; } input[type=text] { padding: .35rem; } button { padding: .35rem .8rem; }
    small { color: #666; }
  </style>
</head>
<body>
  <h1>effect-session demo</h1>
  ${body}
  <p><small>Sessions live in PostgreSQL; the cookie holds only a random key (HttpOnly, so scripts cannot read it).</small></p>
</body>
</html>`)

const home = Effect.gen(function*() {
  const session = yield* DemoSession
  yield* session.update((s) => ({ ...s, visits: s.visits + 1 }))
  const { user, visits } = yield* session.get
  const flash = Object.values(yield* session.flashes)
    .map((message) => `<p class="flash" id="flash">${escape(message)}</p>`)
    .join("")
  const counter = `<p>Visits in this session: <span class="counter" id="visits">${visits}</span></p>`
  if (user === null) {
    return yield* page(`${flash}
  ${counter}
  <form method="post" action="/login">
    <label>Your name <input type="text" name="name" required maxlength="40" autofocus></label>
    <label><input type="checkbox" name="remember" value="1"> Remember me</label>
    <button type="submit">Log in</button>
  </form>`)
  }
  return yield* page(`${flash}
  <p>Hello, <strong id="user">${escape(user)}</strong>!</p>
  ${counter}
  <form method="post" action="/logout"><button type="submit">Log out</button></form>
  <form method="post" action="/forget"><button type="submit">Log out and forget me</button></form>`)
})

const LoginForm = Schema.Struct({
  name: Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(40)),
  remember: Schema.optional(Schema.Literal("1"))
})

const backHome = HttpServerResponse.redirect("/", { status: 303 })

const login = Effect.gen(function*() {
  const session = yield* DemoSession
  const form = yield* HttpServerRequest.schemaBodyUrlParams(LoginForm).pipe(Effect.option)
  if (Option.isNone(form)) {
    yield* session.flash("notice", "Please enter a name (1 to 40 characters).")
    return backHome
  }
  yield* session.regenerate // a new key at login defeats session fixation
  yield* session.update((s) => ({ ...s, user: form.value.name }))
  yield* session.rememberMe(form.value.remember === "1")
  yield* session.flash("notice", `Welcome, ${form.value.name}!`)
  return backHome
})

const logout = Effect.gen(function*() {
  const session = yield* DemoSession
  const { user } = yield* session.get
  yield* session.regenerate
  yield* session.update((s) => ({ ...s, user: null }))
  yield* session.rememberMe(false)
  yield* session.flash("notice", `Goodbye${user ? `, ${user}` : ""}. You are logged out.`)
  return backHome
})

const forget = Effect.gen(function*() {
  const session = yield* DemoSession
  yield* session.destroy
  yield* session.flash("notice", "Logged out, and your session is forgotten.")
  return backHome
})

/** The demo's routes, with sessions. Needs a `SessionStore` and `DemoSession.layer(...)`. */
export const DemoApp = HttpRouter.empty.pipe(
  HttpRouter.get("/", home),
  HttpRouter.post("/login", login),
  HttpRouter.post("/logout", logout),
  HttpRouter.post("/forget", forget),
  HttpRouter.get("/healthz", HttpServerResponse.text("ok")),
  HttpRouter.use(DemoSession.middleware)
)
