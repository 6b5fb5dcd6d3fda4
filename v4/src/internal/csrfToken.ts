/**
 * Session-bound CSRF tokens. A session keeps a random secret (in its envelope, new with every key); a token is the
 * secret masked with a fresh one-time pad (`pad ‖ pad ⊕ secret`), so tokens differ on every page (no fixed string
 * for a compression side channel such as BREACH to recover) yet all unmask to the same secret. Checked in constant
 * time.
 */
import { HttpServerRequest, UrlParams } from "effect/http"
import { Effect, Option } from "effect"
import { randomBytes, timingSafeEqual } from "node:crypto"

const secretBytes = 32

/** A new secret. */
export const newSecret = (): string => randomBytes(secretBytes).toString("base64url")

/** A masked token for `secret`. */
export const mask = (secret: string): string => {
  const plain = Buffer.from(secret, "base64url")
  const pad = randomBytes(plain.length)
  const masked = Buffer.alloc(plain.length)
  for (let i = 0; i < plain.length; i++) masked[i] = pad[i]! ^ plain[i]!
  return Buffer.concat([pad, masked]).toString("base64url")
}

/** Whether `token` is a masking of `secret` (constant time once the lengths are right). */
export const matches = (token: string, secret: string): boolean => {
  const plain = Buffer.from(secret, "base64url")
  if (token.length !== Math.ceil((plain.length * 2 * 4) / 3) || !/^[A-Za-z0-9_-]+$/.test(token)) return false
  const bytes = Buffer.from(token, "base64url")
  if (bytes.length !== plain.length * 2) return false
  const unmasked = Buffer.alloc(plain.length)
  for (let i = 0; i < plain.length; i++) unmasked[i] = bytes[i]! ^ bytes[i + plain.length]!
  return timingSafeEqual(unmasked, plain)
}

/** Where a request carries its token. */
export interface Carrier {
  readonly header: string
  readonly field: string
}

const isUrlEncoded = (request: HttpServerRequest.HttpServerRequest) =>
  /^application\/x-www-form-urlencoded\s*(?:;|$)/i.test(request.headers["content-type"] ?? "")

/**
 * The token a request carries: its header, else the field of a urlencoded form body (the platform keeps the body,
 * so the handler reads it again). A body that cannot be read carries none.
 */
export const carried = (
  request: HttpServerRequest.HttpServerRequest,
  carrier: Carrier
): Effect.Effect<Option.Option<string>> => {
  const header = request.headers[carrier.header]
  if (header !== undefined && header !== "") return Effect.succeed(Option.some(header))
  if (!isUrlEncoded(request)) return Effect.succeed(Option.none())
  return request.urlParamsBody.pipe(
    Effect.map((params) => UrlParams.getFirst(params, carrier.field)),
    Effect.orElseSucceed(() => Option.none<string>())
  )
}
