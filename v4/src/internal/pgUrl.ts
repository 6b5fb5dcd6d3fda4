/**
 * libpq's multi-host connection URLs, which pg does not take (`postgres://u@h1:5441,h2:5442/db` is ERR_INVALID_URL
 * there, and `target_session_attrs` is ignored).
 *
 * A URL is taken apart only as far as pg cannot: its list of hosts and the two parameters that choose among them.
 * Everything else (user, password, database, `sslmode`, `application_name`, `options`, …) stays in a single-host URL
 * that pg parses as it always does, one per host. The password stays inside `Redacted` values.
 */
import { Redacted, Result } from "effect"

/** One server: a host name, an address (IPv6 without brackets) or a socket directory, and a port. */
export interface Host {
  readonly host: string
  /** `undefined`: pg's default (`PGPORT`, else 5432). */
  readonly port?: number | undefined
}

/** libpq's `target_session_attrs`: which server of several a connection wants. */
export const sessionAttrs = ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"] as const

/** One of {@link sessionAttrs}. */
export type TargetSessionAttrs = typeof sessionAttrs[number]

/** libpq's `load_balance_hosts`: the hosts in their order, or a random one first. */
export const loadBalanceModes = ["disable", "random"] as const

/** One of {@link loadBalanceModes}. */
export type LoadBalanceHosts = typeof loadBalanceModes[number]

/** A connection URL taken apart. */
export interface ParsedUrl {
  /** The hosts of a list (`h1,h2`); `undefined` when the URL names one host (or none), which pg handles itself. */
  readonly hosts: ReadonlyArray<Host> | undefined
  /** The URL's host part as written (`h1:5432,h2`), to name it in messages: it never holds the password. */
  readonly hostList: string
  readonly targetSessionAttrs: TargetSessionAttrs | undefined
  readonly loadBalanceHosts: LoadBalanceHosts | undefined
  /** The URL without the two parameters above: what pg gets when no host list is involved. */
  readonly url: Redacted.Redacted<string>
  /**
   * The URL with `host` as its only host (and without the two parameters): for pg to parse. `undefined` for a URL
   * that is not `postgres://` (a socket path), which has no host to replace.
   */
  readonly withHost: ((host: Host) => Redacted.Redacted<string>) | undefined
}

const ours = new Set(["target_session_attrs", "load_balance_hosts"])

/** `host[:port]` or `[v6][:port]` of a URL's host list, decoded; or why not. */
const hostOf = (text: string): Result.Result<Host, string> => {
  const bracketed = /^\[([0-9A-Fa-f:.%]+)\](?::(.*))?$/.exec(text)
  const [raw, port] = bracketed !== null
    ? [bracketed[1]!, bracketed[2]]
    : text.includes(":")
    ? [text.slice(0, text.indexOf(":")), text.slice(text.indexOf(":") + 1)]
    : [text, undefined]
  if (raw === "") return Result.fail("a host of the list is empty")
  if (bracketed === null && /[[\]@/?#]/.test(raw)) return Result.fail("a host of the list is not a host name or address")
  if (port !== undefined && !/^\d{1,5}$/.test(port)) return Result.fail("a port of the host list is not a number")
  const number = port === undefined ? undefined : Number(port)
  if (number !== undefined && (number < 1 || number > 65535)) return Result.fail("a port of the host list is out of range")
  try {
    return Result.succeed({ host: decodeURIComponent(raw), port: number })
  } catch {
    return Result.fail("a host of the list has a malformed percent-encoding")
  }
}

/** How a host is written in a URL: IPv6 in brackets, anything else percent-encoded (a socket directory's `/`). */
export const formatHost = ({ host, port }: Host): string =>
  (host.includes(":") ? `[${host}]` : encodeURIComponent(host)) + (port === undefined ? "" : `:${port}`)

/** A parameter's value, decoded, or why it is refused. */
const parameter = <A extends string>(
  params: URLSearchParams,
  name: string,
  allowed: ReadonlyArray<A>
): Result.Result<A | undefined, string> => {
  const values = params.getAll(name)
  if (values.length === 0) return Result.succeed(undefined)
  const [value] = values
  if (values.some((v) => v !== value)) return Result.fail(`${name} is given twice with different values`)
  return (allowed as ReadonlyArray<string>).includes(value!)
    ? Result.succeed(value as A)
    : Result.fail(`${name} must be one of ${allowed.join(", ")}, got ${JSON.stringify(value!.slice(0, 40))}`)
}

/**
 * Takes a `postgres://` or `postgresql://` URL apart; any other form (a socket path, `socket:`) is left to pg whole.
 * The reason of a refusal never quotes the URL (it may hold a password).
 */
export const parse = (url: string): Result.Result<ParsedUrl, string> => {
  const match = /^(postgres(?:ql)?:\/\/)([^/?#]*)([^?#]*)(?:\?([^#]*))?(#.*)?$/i.exec(url)
  if (match === null && !/^(?:socket:|\/)/.test(url)) {
    return Result.fail("is not a postgres:// (or postgresql://) URL, a socket path or socket: URL")
  }
  if (match === null) {
    return Result.succeed({
      hosts: undefined,
      hostList: "",
      targetSessionAttrs: undefined,
      loadBalanceHosts: undefined,
      url: Redacted.make(url),
      withHost: undefined
    })
  }
  const [, scheme, authority, path, query, fragment] = match as unknown as [string, string, string, string, string | undefined, string | undefined]
  const at = authority.lastIndexOf("@")
  const userinfo = authority.slice(0, at + 1)
  const hostList = authority.slice(at + 1)
  const segments = query === undefined ? [] : query.split("&")
  const isOurs = (segment: string) => [...new URLSearchParams(segment).keys()].some((key) => ours.has(key))
  const params = new URLSearchParams(segments.filter(isOurs).join("&"))
  const rest = segments.filter((segment) => !isOurs(segment))
  const suffix = path + (rest.length > 0 ? `?${rest.join("&")}` : "") + (fragment ?? "")
  const rebuild = (hostPart: string) => `${scheme}${userinfo}${hostPart}${suffix}`
  return Result.gen(function*() {
    const targetSessionAttrs = yield* parameter(params, "target_session_attrs", sessionAttrs)
    const loadBalanceHosts = yield* parameter(params, "load_balance_hosts", loadBalanceModes)
    const hosts = hostList.includes(",") ? yield* Result.all(hostList.split(",").map(hostOf)) : undefined
    const withHost = (host: Host) => Redacted.make(rebuild(formatHost(host)))
    for (const host of hosts ?? []) {
      if (!URL.canParse(Redacted.value(withHost(host)))) return yield* Result.fail("the URL is not valid for one of its hosts")
    }
    // One host (or none): pg parses the URL as it always has, and reports what it cannot take when it connects.
    return { hosts, hostList, targetSessionAttrs, loadBalanceHosts, url: Redacted.make(rebuild(hostList)), withHost }
  })
}
