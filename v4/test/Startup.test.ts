/**
 * Start-up errors whose first line says what is wrong and what to do: a URL that is no URL, nothing listening, a
 * host that does not resolve, an unknown role or database, SSL against a server without it, a missing schema.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { PgSessionStore } from "../src/index.js"
import { serverUrl } from "./support/database.js"

/** The first line of the error that fails a layerPool built with `options` (and the server's URL changed by `url`). */
const failure = (url: (server: URL) => string, options: PgSessionStore.PoolOptions = {}) =>
  Effect.gen(function*() {
    const server = new URL((yield* serverUrl) ?? "postgres://postgres@127.0.0.1:5432/test")
    const layer = PgSessionStore.layerPool({ url: Redacted.make(url(server)), connectTimeout: "3 seconds", ...options })
    const error = yield* Effect.flip(Effect.scoped(Layer.build(layer)))
    return error.message.split("\n")[0]!
  })

const withPart = (part: "username" | "pathname" | "port" | "hostname", value: string) => (server: URL) => {
  const url = new URL(server)
  url[part] = value
  return url.toString()
}

describe("start-up errors say what is wrong and what to do", () => {
  it.live("a URL that is not one", () =>
    Effect.gen(function*() {
      const line = yield* failure(() => "not a url")
      expect(line).toBe("invalid option url: is not a postgres:// (or postgresql://) URL, a socket path or socket: URL")
    }))
  it.live("nothing listening", () =>
    Effect.gen(function*() {
      expect(yield* failure(withPart("port", "5999"))).toMatch(/could not start: nothing accepts connections at .*:5999: is the server running there\?/)
    }))
  it.live("a host that does not resolve", () =>
    Effect.gen(function*() {
      expect(yield* failure(withPart("hostname", "nosuch.invalid"))).toMatch(/could not start: the host name nosuch\.invalid does not resolve/)
    }))
  it.live("an unknown role, and an unknown database, named as the server names them", () =>
    Effect.gen(function*() {
      expect(yield* failure(withPart("username", "nosuchuser"))).toMatch(/could not start: .*"nosuchuser".*: check the user/)
      expect(yield* failure(withPart("pathname", "/nosuchdb"))).toMatch(/could not start: database "nosuchdb" does not exist: create it/)
    }))
  it.live("SSL asked of a server without it", () =>
    Effect.gen(function*() {
      expect(yield* failure((server) => server.toString(), { ssl: true })).toMatch(/could not start: ssl is on but the server does not speak SSL: set ssl: false/)
    }))
  it.live("a schema that does not exist", () =>
    Effect.gen(function*() {
      expect(yield* failure((server) => server.toString(), { tableName: "nosuchschema.sessions" }))
        .toBe(`invalid option tableName: schema "nosuchschema" does not exist`)
    }))
})
