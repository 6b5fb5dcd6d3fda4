/**
 * `npx tsx examples/httpapi/main.ts`: the HttpApi example on port 3002 (PORT), Swagger UI at /docs. Uses
 * DATABASE_URL when set, else the embedded engine.
 *
 *   curl -i -c jar -b jar -H 'content-type: application/json' -d '{"name":"ada"}' localhost:3002/login
 *   curl -i -c jar -b jar -X POST localhost:3002/count
 */
import { HttpRouter } from "effect/http"
import { HttpApiSwagger } from "effect/http-api"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Option } from "effect"
import { createServer } from "node:http"
import * as EmbeddedPostgres from "../../src/EmbeddedPostgres.js" // "effect-session/EmbeddedPostgres"
import { PgSessionStore } from "../../src/index.js" // "effect-session"
import { Api, ApiLive, ApiSession } from "./api.js"

const Store = Layer.unwrap(Effect.map(
  Config.option(Config.Redacted("DATABASE_URL")),
  Option.match({
    onSome: (url) => PgSessionStore.layerPool({ url, tableName: "httpapi_sessions" }),
    onNone: () => PgSessionStore.layer({ tableName: "httpapi_sessions" }).pipe(Layer.provide(EmbeddedPostgres.layer()))
  })
))

// Built bottom-up: the store and settings, then the server opens its port, then the API is served.
const Main = HttpRouter.serve(Layer.merge(ApiLive, HttpApiSwagger.layer(Api))).pipe(
  Layer.provide(NodeHttpServer.layer(createServer, { port: Number(process.env.PORT ?? 3002) })),
  Layer.provide(ApiSession.layer({ idleTimeout: "30 minutes" })),
  Layer.provide(Store)
)

NodeRuntime.runMain(Layer.launch(Main))
