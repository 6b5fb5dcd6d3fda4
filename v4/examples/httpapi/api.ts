/**
 * Sessions in an HttpApi (the schema-first API of effect/http-api): the session tag's `Api` middleware gives the
 * group's handlers the session, and declares SessionUnavailable (503) and SessionConflict (409) as errors of its
 * endpoints, so they appear in the OpenAPI document. The cross-origin guard on the whole API refuses a form posted
 * from another site (403, also in OpenAPI) before any session is loaded. `main.ts` serves it with Swagger UI at
 * /docs.
 */
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { Effect, Layer, Schema } from "effect"
import { CsrfProtection, SessionMiddleware } from "../../src/index.js" // "effect-session"

/** The session: who is logged in, and a counter. */
export class ApiSession extends SessionMiddleware.Tag<ApiSession>()("ApiSession", {
  schema: Schema.Struct({ user: Schema.NullOr(Schema.String), count: Schema.Number }),
  initial: { user: null, count: 0 }
}) {}

const Me = Schema.Struct({ user: Schema.NullOr(Schema.String), count: Schema.Number })

export class Account extends HttpApiGroup.make("account")
  .add(HttpApiEndpoint.post("login", "/login", {
    payload: Schema.Struct({ name: Schema.Trimmed.check(Schema.isNonEmpty()) }),
    success: Me
  }))
  .add(HttpApiEndpoint.get("me", "/me", { success: Me }))
  .add(HttpApiEndpoint.post("count", "/count", { success: Me }))
  .add(HttpApiEndpoint.post("logout", "/logout"))
  .middleware(ApiSession.Api)
{}

// The API's middleware runs before its groups': the guard before the session.
export class Api extends HttpApi.make("sessions").add(Account).middleware(CsrfProtection.Api) {}

const AccountLive = HttpApiBuilder.group(Api, "account", (handlers) =>
  handlers
    .handle("login", ({ payload }) =>
      Effect.gen(function*() {
        const session = yield* ApiSession
        yield* session.regenerate // a new key on login
        yield* session.update((s) => ({ ...s, user: payload.name }))
        return yield* session.get
      }))
    .handle("me", () => Effect.flatMap(ApiSession, (session) => session.get))
    .handle("count", () =>
      Effect.gen(function*() {
        const session = yield* ApiSession
        yield* session.update((s) => ({ ...s, count: s.count + 1 }))
        return yield* session.get
      }))
    .handle("logout", () => Effect.flatMap(ApiSession, (session) => session.destroy)))


/** The API with its handlers and the session middleware; needs `ApiSession.layer(...)` and a `SessionStore`. */
export const ApiLive = HttpApiBuilder.layer(Api).pipe(
  Layer.provide(AccountLive),
  Layer.provide([ApiSession.apiLayer, CsrfProtection.apiLayer()])
)
