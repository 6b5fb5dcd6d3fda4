/**
 * A session with no server state: the cart is sealed into its cookie (AES-256-GCM) by `SessionMiddleware.SealedTag`;
 * no store, no database. `SESSION_SECRETS=$(openssl rand -base64 32) npx tsx examples/sealed.ts` serves it on port
 * 3004 (PORT); several comma-separated secrets rotate (the first seals, every one opens).
 */
import { HttpRouter, HttpServerResponse } from "effect/http"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Schema } from "effect"
import { createServer } from "node:http"
import { CsrfProtection, SessionMiddleware } from "../src/index.js" // "effect-session"

export class Cart extends SessionMiddleware.SealedTag<Cart>()("Cart", {
  schema: Schema.Struct({ items: Schema.Array(Schema.String) }),
  initial: { items: [] }
}) {}

export const app = HttpRouter.addAll([
  HttpRouter.route("GET", "/", Effect.map(Effect.flatMap(Cart, (cart) => cart.get), ({ items }) =>
    HttpServerResponse.text(`${items.length} items: ${items.join(", ")}\n`))),
  HttpRouter.route("POST", "/add/:item", Effect.gen(function*() {
    const cart = yield* Cart
    const { item } = yield* HttpRouter.schemaPathParams(Schema.Struct({ item: Schema.String }))
    yield* cart.update(({ items }) => ({ items: [...items, item] }))
    return HttpServerResponse.text("added\n")
  }).pipe(
    // The cookie holds about 2.8 KB of data: past it, the change is refused here and nothing changes.
    Effect.catchTag("SessionTooLarge", () => Effect.succeed(HttpServerResponse.text("your cart is full\n", { status: 413 })))
  )),
  HttpRouter.route("POST", "/empty", Effect.as(Effect.flatMap(Cart, (cart) => cart.destroy), HttpServerResponse.text("emptied\n")))
]).pipe(
  Layer.provide(HttpRouter.middleware<{ provides: Cart }>()(Cart.middleware, { global: true })),
  Layer.provide(HttpRouter.middleware(CsrfProtection.middleware(), { global: true }))
)

/** The secrets, read through Config: `SESSION_SECRETS`, comma-separated, each at least 32 bytes. */
export const CartLive = Cart.layerConfig({ secrets: Config.Array(Schema.Redacted(Schema.String), "SESSION_SECRETS") })

if (import.meta.url === `file://${process.argv[1]}`) {
  HttpRouter.serve(app).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { port: Number(process.env.PORT ?? 3004) })),
    Layer.provide(CartLive), // no store
    Layer.launch,
    NodeRuntime.runMain
  )
}
