/**
 * Construction through `Config`: every layer can read its options from the environment, and a bad value fails the
 * layer (a `ConfigError` when it cannot be read, an `InvalidConfig` when it is read but wrong), never a request.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Config, ConfigProvider, Context, Duration, Effect, Layer, Redacted, Schema } from "effect"
import { MemorySessionStore, PgSessionStore, SessionMiddleware, SessionStore } from "../src/index.js"
import { serverUrl, TestSchema, withSchema, ServerPgClient } from "./support/database.js"

class ConfiguredSession extends SessionMiddleware.Tag<ConfiguredSession>()("test/ConfiguredSession", {
  schema: Schema.Struct({ n: Schema.Number }),
  initial: { n: 0 }
}) {}

const withEnv = (env: Record<string, string>) => Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))

const storeOptions = {
  defaultPeriod: Config.Duration("SESSION_PERIOD").pipe(Config.withDefault(Duration.weeks(1))),
  timeout: Config.Duration("SESSION_TIMEOUT").pipe(Config.withDefault(Duration.seconds(3)))
}

describe("Config", () => {
  it.effect("MemorySessionStore.layerConfig reads its options", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(MemorySessionStore.layerConfig(storeOptions)).pipe(withEnv({ SESSION_PERIOD: "2 hours" }))
      const store = Context.get(context, SessionStore.SessionStore)
      expect(Duration.toMillis(yield* store.defaultPeriod)).toBe(7_200_000)
    }))

  it.effect("…Config layers take plain values beside Configs, nested too; a plain string never overflows the stack", () =>
    Effect.gen(function*() {
      const mixed = yield* Layer.build(MemorySessionStore.layerConfig({ defaultPeriod: "3 hours", timeout: Config.succeed(5_000) }))
      const store = Context.get(mixed, SessionStore.SessionStore)
      expect(Duration.toMillis(yield* store.defaultPeriod)).toBe(10_800_000)
      yield* Layer.build(ConfiguredSession.layerConfig({
        cookie: { secure: false, secrets: [Redacted.make("s".repeat(32))] },
        idleTimeout: Config.succeed("5 minutes")
      }))
      const bad = yield* Effect.flip(Layer.build(ConfiguredSession.layerConfig({ idleTimeout: "never" as Duration.Input })))
      expect(bad).toMatchObject({ _tag: "InvalidConfig", option: "idleTimeout" })
    }))

  it.effect("unreadable values are a ConfigError; readable but invalid ones an InvalidConfig", () =>
    Effect.gen(function*() {
      const unreadable = yield* Effect.flip(Layer.build(MemorySessionStore.layerConfig(storeOptions)).pipe(withEnv({ SESSION_PERIOD: "soon" })))
      expect(unreadable instanceof Config.ConfigError).toBe(true)
      const invalid = yield* Effect.flip(Layer.build(MemorySessionStore.layerConfig(storeOptions)).pipe(withEnv({ SESSION_TIMEOUT: "0 millis" })))
      expect(invalid).toMatchObject({ _tag: "InvalidConfig", option: "timeout" })
    }))

  it.effect("a session tag's layerConfig: options from the environment, bad ones fail the layer", () =>
    Effect.gen(function*() {
      const settings = ConfiguredSession.layerConfig({
        idleTimeout: Config.Duration("SESSION_IDLE"),
        cookie: { name: Config.String("SESSION_COOKIE"), domain: Config.option(Config.String("SESSION_DOMAIN")).pipe(Config.map((o) => o._tag === "Some" ? o.value : undefined)) }
      })
      yield* Layer.build(settings).pipe(withEnv({ SESSION_IDLE: "15 minutes", SESSION_COOKIE: "__Host-sid" }))
      const badCookie = yield* Effect.flip(Layer.build(settings).pipe(withEnv({ SESSION_IDLE: "15 minutes", SESSION_COOKIE: "__Host-sid", SESSION_DOMAIN: "example.com" })))
      expect(badCookie).toMatchObject({ _tag: "InvalidConfig", option: "cookie" })
      const missing = yield* Effect.flip(Layer.build(settings).pipe(withEnv({ SESSION_COOKIE: "sid" })))
      expect(missing instanceof Config.ConfigError).toBe(true) // SESSION_IDLE is missing
    }))
})

layer(withSchema(ServerPgClient))("Config on PostgreSQL", (it) => {
  it.effect("PgSessionStore.layerConfig reads the table name; layerPoolConfig the connection too", () =>
    Effect.gen(function*() {
      const tableName = (yield* TestSchema).table()
      const onClient = yield* Layer.build(PgSessionStore.layerConfig({ tableName: Config.String("SESSION_TABLE") })).pipe(
        withEnv({ SESSION_TABLE: tableName })
      )
      const store = Context.get(onClient, SessionStore.SessionStore)
      const key = yield* store.generate({ value: "from config" })
      const url = yield* serverUrl
      if (url === undefined) return // the embedded engine has no URL to configure: the client path above covers it
      const pooled = yield* Layer.build(PgSessionStore.layerPoolConfig({
        url: Config.Redacted("DATABASE_URL"),
        tableName: Config.String("SESSION_TABLE"),
        maxConnections: Config.Int("DATABASE_POOL").pipe(Config.withDefault(2))
      })).pipe(withEnv({ DATABASE_URL: url, SESSION_TABLE: tableName }))
      const second = Context.get(pooled, SessionStore.SessionStore)
      expect((yield* second.get(key)).value).toBe("from config")
      const wrong = yield* Effect.flip(Layer.build(PgSessionStore.layerPoolConfig({
        url: Config.succeed(Redacted.make(url)),
        tableName: Config.String("SESSION_TABLE")
      })).pipe(withEnv({ SESSION_TABLE: "a.b.c" })))
      expect(wrong).toMatchObject({ _tag: "InvalidConfig", option: "tableName" })
    }))
})
