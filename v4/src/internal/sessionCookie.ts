/**
 * The session cookie: its attributes and their validation, reading the key from a `Cookie` header (exactly one,
 * well-formed, and signed when secrets are configured), and writing `Set-Cookie`.
 */
import { Cookies, Headers } from "effect/http"
import { Option, Result } from "effect"
import { createHmac, timingSafeEqual } from "node:crypto"
import * as SessionKey from "../SessionKey.js"

/** Attributes of the session cookie. */
export interface Attributes {
  readonly path: string
  readonly domain?: string | undefined
  readonly secure: boolean
  readonly httpOnly: boolean
  readonly sameSite: "lax" | "strict" | "none"
}

/** The attributes with the secure defaults: Path=/, Secure, HttpOnly, SameSite=Lax, no Domain. */
export const attributes = (options: {
  readonly path?: string | undefined
  readonly domain?: string | undefined
  readonly secure?: boolean | undefined
  readonly httpOnly?: boolean | undefined
  readonly sameSite?: "lax" | "strict" | "none" | undefined
} = {}): Attributes => ({
  path: options.path ?? "/",
  domain: options.domain,
  secure: options.secure ?? true,
  httpOnly: options.httpOnly ?? true,
  sameSite: options.sameSite ?? "lax"
})

/**
 * The default cookie name: `__Host-session` when the attributes allow the prefix (Secure, Path=/, no Domain: a
 * sibling subdomain then cannot set a cookie of that name), else `session`.
 */
export const defaultName = (attributes: Attributes): string =>
  attributes.secure && attributes.path === "/" && attributes.domain === undefined ? "__Host-session" : "session"

/**
 * Why a session cookie that was sent is not used. `expired` is the sealed mode's: a sealed cookie past the expiry or
 * the absolute timeout sealed into it.
 */
export type Rejection = "oversized" | "duplicated" | "malformed" | "unsigned" | "forged" | "expired"

/** The HMAC-SHA256 of `key` under `secret`, base64url (43 characters). */
const signature = (key: string, secret: Uint8Array) => createHmac("sha256", secret).update(key).digest("base64url")

/** The cookie's value for `key`: the key, or `key.signature` under the first secret. */
export const value = (key: string, secrets: ReadonlyArray<Uint8Array>): string =>
  secrets.length === 0 || key === "" ? key : `${key}.${signature(key, secrets[0]!)}`

/** The key in a signed cookie value if one of `secrets` signed it (each compared in constant time); else why not. */
const verified = (
  found: string,
  secrets: ReadonlyArray<Uint8Array>
): { readonly key: Option.Option<SessionKey.SessionKey>; readonly rejected?: Rejection } => {
  const dot = found.indexOf(".")
  if (dot === -1) return { key: Option.none(), rejected: "unsigned" }
  const key = found.slice(0, dot)
  const sent = Buffer.from(found.slice(dot + 1))
  if (!SessionKey.isSessionKey(key) || sent.length !== SessionKey.encodedLength) {
    return { key: Option.none(), rejected: "malformed" }
  }
  let valid = false
  for (const secret of secrets) valid = timingSafeEqual(Buffer.from(signature(key, secret)), sent) || valid
  return valid ? { key: Option.some(key) } : { key: Option.none(), rejected: "forged" }
}

/**
 * The value sent in the `Cookie` header under `name`, if it occurs exactly once in a header of at most 16 KiB;
 * otherwise why not (absent: no reason). Both modes read their cookie with it.
 */
export const find = (
  headers: Headers.Headers,
  name: string
): { readonly value?: string; readonly rejected?: "oversized" | "duplicated" } => {
  const header = headers["cookie"]
  if (header === undefined) return {}
  if (header.length > 16 * 1024) return { rejected: "oversized" }
  let found: string | undefined
  // Cookie pairs are separated by ";" (RFC 6265 §4.2.1); each pair is parsed by effect/http's Cookies.
  for (const pair of header.split(";")) {
    const value = Cookies.parseHeader(pair)[name]
    if (value === undefined) continue
    if (found !== undefined) return { rejected: "duplicated" }
    found = value
  }
  return found === undefined ? {} : { value: found }
}

/**
 * The session key sent in the `Cookie` header under `name`, if it occurs exactly once, is a well-formed key and
 * (with `secrets`) carries a valid signature; otherwise why not (absent: no reason). A rejected cookie never
 * reaches the store.
 */
export const inspect = (
  headers: Headers.Headers,
  name: string,
  secrets: ReadonlyArray<Uint8Array> = []
): { readonly key: Option.Option<SessionKey.SessionKey>; readonly rejected?: Rejection } => {
  const { rejected, value: found } = find(headers, name)
  if (found === undefined) return rejected === undefined ? { key: Option.none() } : { key: Option.none(), rejected }
  if (secrets.length > 0) return verified(found, secrets)
  return SessionKey.isSessionKey(found) ? { key: Option.some(found) } : { key: Option.none(), rejected: "malformed" }
}

/** The session key sent under `name`, if exactly one well-formed one was sent (see {@link inspect}). */
export const read = (headers: Headers.Headers, name: string): Option.Option<SessionKey.SessionKey> =>
  inspect(headers, name).key

/** A `Set-Cookie` for the key; `maxAge` undefined makes a browser-session cookie, zero deletes it. */
export const make = (
  name: string,
  value: string,
  attributes: Attributes,
  maxAge: number | undefined
): Cookies.Cookie =>
  Result.getOrThrow(Cookies.makeCookie(name, value, {
    path: attributes.path,
    domain: attributes.domain,
    secure: attributes.secure,
    httpOnly: attributes.httpOnly,
    sameSite: attributes.sameSite,
    ...(maxAge === undefined ? {} : maxAge <= 0 ? { maxAge: 0, expires: new Date(0) } : { maxAge: `${maxAge} millis` })
  }))

/** The header line that tells caches a response depends on the `Cookie` request header. */
export const vary = (headers: Headers.Headers): string => {
  const current = headers["vary"]
  if (current === undefined || current === "") return "Cookie"
  return /(^|,)\s*(cookie|\*)\s*(,|$)/i.test(current) ? current : `${current}, Cookie`
}

/** Keeps shared caches from storing a response that sets a session cookie. */
export const privateCacheControl = (headers: Headers.Headers): string => {
  const current = headers["cache-control"]
  if (current === undefined || current === "") return "private, no-store"
  return /\b(private|no-store)\b/i.test(current) ? current : `private, ${current.replace(/\bpublic\b\s*,?\s*/i, "")}`
}

/** A host name (RFC 1034 labels), optionally with the leading dot that browsers ignore. */
const hostname = /^\.?(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

/**
 * Checks the cookie's name and every attribute as `Set-Cookie` will need them (so nothing can fail later, inside a
 * request), and the rules of the `__Host-` and `__Secure-` prefixes; returns a reason when one is broken.
 */
export const violation = (name: string, attributes: Attributes): string | undefined => {
  if (typeof name !== "string" || Result.isFailure(Cookies.makeCookie(name, "x"))) {
    return `${JSON.stringify(name)} is not a valid cookie name`
  }
  if (!["lax", "strict", "none"].includes(attributes.sameSite)) return `sameSite must be "lax", "strict" or "none"`
  for (const flag of ["secure", "httpOnly"] as const) {
    if (typeof attributes[flag] !== "boolean") return `${flag} must be a boolean`
  }
  if (attributes.domain !== undefined && !(typeof attributes.domain === "string" && hostname.test(attributes.domain))) {
    return `domain ${JSON.stringify(attributes.domain)} is not a host name`
  }
  if (typeof attributes.path !== "string" || !attributes.path.startsWith("/")) {
    return `path ${JSON.stringify(attributes.path)} must start with "/"`
  }
  const withAttributes = Cookies.makeCookie(name, "x", {
    path: attributes.path,
    domain: attributes.domain,
    secure: attributes.secure,
    httpOnly: attributes.httpOnly,
    sameSite: attributes.sameSite
  })
  if (Result.isFailure(withAttributes)) {
    const reason = withAttributes.failure.reason._tag
    if (reason === "InvalidCookieDomain") return `domain ${JSON.stringify(attributes.domain)} is not a valid cookie domain`
    if (reason === "InvalidCookiePath") return `path ${JSON.stringify(attributes.path)} is not a valid cookie path`
    return `invalid cookie attributes (${reason})`
  }
  if (name.startsWith("__Host-")) {
    if (!attributes.secure) return "a __Host- cookie must be Secure"
    if (attributes.path !== "/") return "a __Host- cookie must have Path=/"
    if (attributes.domain !== undefined) return "a __Host- cookie must not have a Domain"
  }
  if (name.startsWith("__Secure-") && !attributes.secure) return "a __Secure- cookie must be Secure"
  if (attributes.sameSite === "none" && !attributes.secure) return "SameSite=None requires Secure"
  return undefined
}
