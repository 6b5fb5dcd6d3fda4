/**
 * The stored form of a middleware session: a small JSON envelope around the schema-encoded data.
 *
 * `{ v: 1, d: <encoded data>, f: <flash for the next request>, c: <created, epoch ms>, r: <remembered>,
 *   t?: <CSRF secret> }`
 */
import { Predicate, Result, Schema, SchemaIssue } from "effect"

/** What the middleware keeps in the store. */
export interface Envelope {
  readonly v: 1
  /** The data, encoded by the schema. */
  readonly d: unknown
  /** Flash messages for the next request. */
  readonly f: Readonly<Record<string, string>>
  /** Creation time (epoch ms), for the absolute timeout; kept across rotations. */
  readonly c: number
  /** Remembered (persistent cookie, longer timeouts)? */
  readonly r: boolean
  /** Set by 0.1 on keys rotated away; read as "rotated" so such a key stays read-only after an upgrade. */
  readonly x?: true
  /** The session's CSRF secret (32 random bytes, base64url), once a token was asked for; new with every key. */
  readonly t?: string | undefined
}

/** Builds an envelope. */
export const make = (
  data: unknown,
  flash: Readonly<Record<string, string>>,
  created: number,
  remember: boolean,
  csrf?: string | undefined
): Envelope => ({ v: 1, d: data, f: flash, c: created, r: remember, ...(csrf === undefined ? {} : { t: csrf }) })

/** The envelope as the string stored. */
export const encode = (envelope: Envelope): string => JSON.stringify(envelope)

/** Parses a stored string; the reason when it is not an envelope (never quoting the value). */
export const decode = (value: string): Result.Result<Envelope, string> => {
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch {
    return Result.fail("not JSON")
  }
  if (
    !Predicate.isObject(parsed) || parsed.v !== 1 || typeof parsed.c !== "number" || typeof parsed.r !== "boolean" ||
    !Predicate.isObject(parsed.f) || !Object.values(parsed.f).every((message) => typeof message === "string") ||
    (parsed.t !== undefined && typeof parsed.t !== "string")
  ) {
    return Result.fail("not a session envelope")
  }
  return Result.succeed(parsed as unknown as Envelope)
}

/** Where a parse failed, without the values (session data may be personal, and logs travel far). */
const formatter = SchemaIssue.makeFormatterStandardSchemaV1()
const issuePaths = (error: Schema.SchemaError): string =>
  [...new Set(formatter(error.issue).issues.map((issue) => issue.path?.join(".") || "(root)"))]
    .join(", ")

/** The schema as the envelope uses it: encoding and decoding of the data, failures as path-only reasons. */
export interface DataCodec<A> {
  readonly encode: (data: A) => Result.Result<unknown, string>
  readonly decode: (encoded: unknown) => Result.Result<A, string>
}

/** The codec of a schema whose encoded form is JSON. */
export const dataCodec = <A, I>(schema: Schema.Codec<A, I>): DataCodec<A> => {
  const encode = Schema.encodeResult(schema)
  const decode = Schema.decodeUnknownResult(schema)
  return {
    encode: (data) => Result.mapError(encode(data), (error) => `does not encode with the schema at ${issuePaths(error)}`),
    decode: (encoded) =>
      Result.mapError(decode(encoded), (error) => `data does not decode with the schema at ${issuePaths(error)}`)
  }
}
