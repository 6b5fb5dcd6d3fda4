/**
 * The demo app: log in with a name, a per-session visit counter, flash messages after login and logout,
 * "log out" and "log out and forget me", and "Your sessions" (every device the name is logged in on, each
 * revocable, and "log out everywhere else"). Exported so tests and benchmarks run the very same app.
 *
 * A model of how to write one: cross-origin requests refused (`CsrfProtection`) and every form carrying the
 * session's CSRF token (`csrfTokens: true` in `demoOptions`); no session for a visitor who stored nothing; logout
 * by `dropPrivileges`, so the logged-in key reads nothing afterwards; small form bodies only; pages that refuse to
 * be framed.
 */
import { HttpIncomingMessage, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { ByteSize, DateTime, Effect, Layer, Option, Schema } from "effect"
import { CsrfProtection, SessionMiddleware } from "../../src/index.js"

/** What the demo keeps in a session, and the tag its handlers reach it by. Options come with its layer. */
export class DemoSession extends SessionMiddleware.Tag<DemoSession>()("demo/Session", {
  schema: Schema.Struct({ user: Schema.NullOr(Schema.String), visits: Schema.Number }),
  initial: { user: null, visits: 0 }
}) {}

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]!)

/** The demo's session options besides its timeouts: CSRF tokens on every form. */
export const demoOptions: SessionMiddleware.Options = { csrfTokens: true }

/** Pages refuse to be framed (clickjacking of the revoke buttons), load nothing from elsewhere, and run no script. */
const pageHeaders = {
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
  "x-frame-options": "DENY",
  "referrer-policy": "same-origin"
}

/**
 * A hidden form field holding the session's CSRF token; none for a visitor without a session (asking for a token
 * would create one; the cross-origin guard protects that visitor's login form).
 */
const tokenField = Effect.flatMap(DemoSession, (session) =>
  Effect.flatMap(session.isNew, (isNew) =>
    isNew ? Effect.succeed("") : Effect.map(session.csrfToken, (token) => `<input type="hidden" name="_csrf" value="${token}">`)))

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
    table { border-collapse: collapse; margin: .6rem 0; } td, th { padding: .3rem .6rem; border-bottom: 1px solid #ddd; text-align: left; }
  </style>
</head>
<body>
  <h1>effect-session demo</h1>
  ${body}
  <p><small>Sessions live in PostgreSQL; the cookie holds only a random key (HttpOnly, so scripts cannot read it).</small></p>
</body>
</html>`).pipe(HttpServerResponse.setHeaders(pageHeaders), Effect.succeed)

const home = Effect.gen(function*() {
  const session = yield* DemoSession
  // A visitor without a session gets none for looking: only a session that exists counts its visits.
  if (!(yield* session.isNew)) yield* session.update((s) => ({ ...s, visits: s.visits + 1 }))
  const { user, visits } = yield* session.get
  const flash = Object.values(yield* session.flashes)
    .map((message) => `<p class="flash" id="flash">${escape(message)}</p>`)
    .join("")
  const counter = `<p>Visits in this session: <span class="counter" id="visits">${visits}</span></p>`
  if (user === null) {
    return yield* page(`${flash}
  ${counter}
  <form method="post" action="/login">${yield* tokenField}
    <label>Your name <input type="text" name="name" required maxlength="40" autofocus></label>
    <label><input type="checkbox" name="remember" value="1"> Remember me</label>
    <button type="submit">Log in</button>
  </form>`)
  }
  return yield* page(`${flash}
  <p>Hello, <strong id="user">${escape(user)}</strong>!</p>
  ${counter}
  <p><a href="/sessions" id="your-sessions">Your sessions</a></p>
  <form method="post" action="/logout">${yield* tokenField}<button type="submit">Log out</button></form>
  <form method="post" action="/forget">${yield* tokenField}<button type="submit">Log out and forget me</button></form>`)
})

const time = (at: DateTime.Utc) => DateTime.formatIso(at).replace("T", " ").slice(0, 19) + " UTC"

/** "Your sessions": every live session of the logged-in user, this one marked, each revocable. */
const sessions = Effect.gen(function*() {
  const session = yield* DemoSession
  const { user } = yield* session.get
  if (user === null) return backHome
  const token = yield* tokenField
  const rows = (yield* session.sessions).map((s) => `<tr class="session" data-id="${s.id}">
      <td>${s.current ? "<strong>This device</strong>" : escape(s.metadata.userAgent ?? "unknown device")}</td>
      <td>${time(s.createdAt)}</td><td>${time(s.lastSeenAt)}</td>
      <td>${s.current ? "" : `<form method="post" action="/sessions/revoke">${token}<input type="hidden" name="id" value="${s.id}">
        <button type="submit" class="revoke">Revoke</button></form>`}</td></tr>`)
  return yield* page(`${Object.values(yield* session.flashes).map((m) => `<p class="flash" id="flash">${escape(m)}</p>`).join("")}
  <h2>Your sessions, ${escape(user)}</h2>
  <table><thead><tr><th>Device</th><th>Signed in</th><th>Last seen</th><th></th></tr></thead>
  <tbody>${rows.join("")}</tbody></table>
  <form method="post" action="/sessions/logout-others">${token}<button type="submit" id="logout-others">Log out everywhere else</button></form>
  <p><a href="/">Back</a></p>`)
})

const revoke = Effect.gen(function*() {
  const session = yield* DemoSession
  const form = yield* HttpServerRequest.schemaBodyUrlParams(Schema.Struct({ id: Schema.String })).pipe(Effect.option)
  // Scoped to this user's sessions: an id of someone else's session revokes nothing.
  const revoked = Option.isSome(form) && (yield* session.revoke(form.value.id))
  yield* session.flash("notice", revoked ? "That session is logged out." : "No such session.")
  return HttpServerResponse.redirect("/sessions", { status: 303 })
})

const logoutOthers = Effect.gen(function*() {
  const session = yield* DemoSession
  const ended = yield* session.logoutEverywhere({ keepCurrent: true })
  yield* session.flash("notice", `Logged out ${ended} other session${ended === 1 ? "" : "s"}.`)
  return HttpServerResponse.redirect("/sessions", { status: 303 })
})

const LoginForm = Schema.Struct({
  // Printable names only: a control character would reach the page and the sessions list.
  name: Schema.Trim.check(Schema.isMinLength(1), Schema.isMaxLength(40), Schema.isPattern(/^\P{Cc}+$/u)),
  remember: Schema.optional(Schema.Literal("1"))
})

const backHome = HttpServerResponse.redirect("/", { status: 303 })

const login = Effect.gen(function*() {
  const session = yield* DemoSession
  const form = yield* HttpServerRequest.schemaBodyUrlParams(LoginForm).pipe(Effect.option)
  if (Option.isNone(form)) {
    yield* session.flash("notice", "Please enter a name (1 to 40 printable characters).")
    return backHome
  }
  const request = yield* HttpServerRequest.HttpServerRequest
  yield* session.regenerate // a new key at login defeats session fixation
  yield* session.update((s) => ({ ...s, user: form.value.name }))
  // Whose session this is (listed in "Your sessions"); saved in the rotation's one statement.
  yield* session.setSubject(form.value.name, {
    metadata: { userAgent: (request.headers["user-agent"] ?? "unknown").slice(0, 300) }
  })
  yield* session.rememberMe(form.value.remember === "1")
  yield* session.flash("notice", `Welcome, ${form.value.name}!`)
  return backHome
})

const logout = Effect.gen(function*() {
  const session = yield* DemoSession
  const { user } = yield* session.get
  yield* session.dropPrivileges // a new key; the logged-in one ends at once, leaving nothing readable
  yield* session.update((s) => ({ ...s, user: null }))
  yield* session.setSubject(null)
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

/** Form bodies larger than this are refused with 413 before they are read. */
const maxFormBytes = 16 * 1024

/** Refuses a request whose declared body is too large, and bounds the bytes read of any other. */
const smallBodies = <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Number(request.headers["content-length"] ?? 0) > maxFormBytes
      ? Effect.succeed(HttpServerResponse.text("Payload Too Large", { status: 413, headers: { connection: "close" } }))
      : Effect.provideService(app, HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxFormBytes)))

/**
 * The demo's routes, with sessions, behind the cross-origin guard (middleware for every request, as a router's
 * `use` was on Effect 3: the one provided last runs first). Needs a `SessionStore` and
 * `DemoSession.layer({ ...demoOptions, ... })`; serve it with `HttpRouter.serve(DemoApp)`.
 */
export const DemoApp = HttpRouter.addAll([
  HttpRouter.route("GET", "/", home),
  HttpRouter.route("POST", "/login", login),
  HttpRouter.route("POST", "/logout", logout),
  HttpRouter.route("POST", "/forget", forget),
  HttpRouter.route("GET", "/sessions", sessions),
  HttpRouter.route("POST", "/sessions/revoke", revoke),
  HttpRouter.route("POST", "/sessions/logout-others", logoutOthers),
  HttpRouter.route("GET", "/healthz", HttpServerResponse.text("ok"))
]).pipe(
  Layer.provide(HttpRouter.middleware<{ provides: DemoSession }>()(DemoSession.middleware, { global: true })),
  Layer.provide(HttpRouter.middleware(CsrfProtection.middleware(), { global: true })), // runs first: a cross-origin post never reaches the session
  Layer.provide(HttpRouter.middleware(smallBodies, { global: true }))
)
