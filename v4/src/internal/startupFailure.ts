/**
 * Why a store could not start, in one line that says what is wrong and what to do: the first line an operator
 * reads when the layer fails (`SessionStoreError`'s message for its `connect` and `init` operations). The server's
 * own words are quoted only for connection-time errors, which name roles and databases, never a session's data.
 */

interface Found {
  readonly code: string | undefined
  readonly message: string
  readonly detail: { readonly host?: string; readonly port?: number }
}

/** The innermost error of a cause chain that carries a code (or, failing that, the innermost error). */
const innermost = (cause: unknown): Found | undefined => {
  let found: Found | undefined
  for (let current = cause, depth = 0; typeof current === "object" && current !== null && depth < 6; depth++) {
    const error = current as { code?: unknown; message?: unknown; address?: unknown; hostname?: unknown; port?: unknown; cause?: unknown }
    const code = typeof error.code === "string" ? error.code : undefined
    const message = typeof error.message === "string" ? error.message : ""
    const host = typeof error.hostname === "string" ? error.hostname : typeof error.address === "string" ? error.address : undefined
    const detail = { ...(host === undefined ? {} : { host }), ...(typeof error.port === "number" ? { port: error.port } : {}) }
    if (code !== undefined || found === undefined || message !== "") found = { code, message, detail }
    if (code !== undefined && code !== "ERR_UNKNOWN") break
    current = error.cause
  }
  return found
}

const where = (detail: Found["detail"]) =>
  detail.host === undefined ? "the server" : `${detail.host}${detail.port === undefined ? "" : `:${detail.port}`}`

/** What each failure means, by code or by the driver's words; `undefined` when it is none of these. */
const reasons: ReadonlyArray<(found: Found) => string | undefined> = [
  ({ code }) =>
    code === "IOREDIS_NOT_INSTALLED"
      ? "ioredis, an optional peer that RedisSessionStore needs, is not installed: npm install ioredis@~5.9.3"
      : undefined,
  ({ code, detail }) =>
    code === "ECONNREFUSED"
      ? `nothing accepts connections at ${where(detail)}: is the server running there? Check the host and port (the url, or host and port)`
      : undefined,
  ({ code, detail }) =>
    code === "ENOTFOUND" || code === "EAI_AGAIN"
      ? `the host name${detail.host === undefined ? "" : ` ${detail.host}`} does not resolve: check the host (the url, or host)`
      : undefined,
  ({ code, message }) =>
    code === "ETIMEDOUT" || /timeout expired|no answer within|Connection terminated due to connection timeout/i.test(message)
      ? "no answer from the server within connectTimeout: a wrong host or port, a firewall, or a server too busy to accept"
      : undefined,
  ({ code, message }) =>
    code === "28P01" ? `${message}: check the user and password` : undefined,
  ({ code, message }) =>
    code === "28000" ? `${message}: check the user (and the server's pg_hba.conf)` : undefined,
  ({ code, message }) =>
    code === "3D000" ? `${message}: create it, or fix the database name in the URL` : undefined,
  ({ code }) =>
    code === "53300" ? "the server has no connection slot left: lower maxConnections or raise its max_connections" : undefined,
  ({ code }) =>
    code === "55P03" || code === "40P01"
      ? "the session table stayed locked past startupTimeout (another instance upgrading it, or a migration holding " +
        "it): start again once that is done, or raise startupTimeout"
      : undefined,
  ({ code }) =>
    code === "57P03" ? "the server is starting up or shutting down: start again in a moment" : undefined,
  ({ code }) =>
    code === "42501"
      ? "the role may not create the session table: create it once with PgSessionStore.schemaSql() and build the layer " +
        "with createTable: false, or grant the role CREATE on the schema"
      : undefined,
  ({ message }) =>
    /does not support SSL/i.test(message)
      ? "ssl is on but the server does not speak SSL: set ssl: false (or sslmode=disable) for it"
      : undefined,
  ({ message }) =>
    /self[- ]signed certificate|unable to verify|certificate has expired/i.test(message)
      ? `the server's certificate is not trusted (${message}): pass its CA as ssl: { ca }`
      : undefined
]

/** The code of the innermost error of a cause chain that carries one (a server's SQLSTATE, a socket's errno). */
export const codeOf = (cause: unknown): string | undefined => innermost(cause)?.code

/** The readable reason a store could not start, or `undefined` when the failure is none of the known ones. */
export const explain = (cause: unknown): string | undefined => {
  const found = innermost(cause)
  if (found === undefined) return undefined
  for (const reason of reasons) {
    const explained = reason(found)
    if (explained !== undefined) return explained
  }
  return undefined
}
