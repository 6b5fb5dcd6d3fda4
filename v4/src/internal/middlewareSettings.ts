/**
 * A session's options, validated once when its layer is built (so nothing can fail later, inside a request) and
 * resolved into the settings every request reads.
 */
import { Effect, Redacted, Result } from "effect"
import { InvalidConfig } from "../SessionError.js"
import * as CsrfToken from "./csrfToken.js"
import * as Envelope from "./envelope.js"
import * as FailureLog from "./failureLog.js"
import type { Definition, Options } from "./middlewareModel.js"
import { durationOption, oneOf, positiveInteger } from "./options.js"
import type * as Renewal from "./renewal.js"
import * as SessionCookie from "./sessionCookie.js"

/** The validated settings of one session middleware. */
export interface Resolved<A> {
  readonly cookieName: string
  readonly attributes: SessionCookie.Attributes
  /** Cookie signing secrets, the first signing; none: unsigned. */
  readonly secrets: ReadonlyArray<Uint8Array>
  readonly policy: Renewal.Policy
  readonly staleTimeout: number
  /** Whether `regenerate` starts the absolute timeout again. */
  readonly restartOnRegenerate: boolean
  /** Where state-changing requests must carry the session's CSRF token; off when undefined. */
  readonly csrf: CsrfToken.Carrier | undefined
  readonly codec: Envelope.DataCodec<A>
  readonly initial: A
  /** The largest data, as encoded JSON bytes. */
  readonly maxBytes: number
  /** Turns stored data that no longer decodes into data that may; identity when none was given. */
  readonly migrate: ((stored: unknown) => unknown) | undefined
  /** What an undecodable stored session becomes. */
  readonly onUndecodable: "reset" | "fail"
  readonly logFailure: ReturnType<typeof FailureLog.make>
  /**
   * Warnings logged sparingly: the plain-HTTP one once per middleware; an ignored session once per reason per 10 s
   * (until when, by reason).
   */
  readonly warnings: { insecureRequest: boolean; readonly ignored: Map<string, number> }
}

const positiveMillis = (option: string, input: Options["idleTimeout"]) => durationOption(option, input ?? 0, 1)

/** The renewal policy: idle and absolute timeouts, normal and remembered, and the threshold. */
const policyOf = (options: Options) =>
  Effect.gen(function*() {
    const threshold = options.renewalThreshold ?? 0.1
    if (!(typeof threshold === "number" && threshold >= 0 && threshold <= 1)) {
      return yield* new InvalidConfig({ option: "renewalThreshold", reason: "must be a fraction between 0 and 1" })
    }
    const policy: Renewal.Policy = {
      normal: {
        idle: yield* positiveMillis("idleTimeout", options.idleTimeout ?? "30 minutes"),
        absolute: yield* positiveMillis("absoluteTimeout", options.absoluteTimeout ?? "1 day")
      },
      remembered: {
        idle: yield* positiveMillis("remember.idleTimeout", options.remember?.idleTimeout ?? "7 days"),
        absolute: yield* positiveMillis("remember.absoluteTimeout", options.remember?.absoluteTimeout ?? "30 days")
      },
      threshold
    }
    return policy
  })

/** Secrets (the signing ones of `cookie.secrets`, or the sealed mode's `secrets`): each at least 32 bytes. */
export const secretsOf = (
  secrets: ReadonlyArray<Redacted.Redacted> | undefined,
  option = "cookie.secrets"
): Result.Result<Array<Buffer>, InvalidConfig> => {
  const list = secrets ?? []
  if (!Array.isArray(list) || !list.every(Redacted.isRedacted)) {
    return Result.fail(new InvalidConfig({ option, reason: "must be a list of Redacted secrets" }))
  }
  const bytes = list.map((secret) => Buffer.from(String(Redacted.value(secret)), "utf8"))
  return bytes.some((secret) => secret.length < 32)
    ? Result.fail(new InvalidConfig({ option, reason: "each secret must be at least 32 bytes" }))
    : Result.succeed(bytes)
}

/** Where the CSRF token is carried, when tokens are on. */
const csrfOf = (option: Options["csrfTokens"]): Result.Result<CsrfToken.Carrier | undefined, InvalidConfig> => {
  if (option === undefined || option === false) return Result.succeed(undefined)
  const header = (option === true ? undefined : option.header) ?? "x-csrf-token"
  const field = (option === true ? undefined : option.field) ?? "_csrf"
  if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/i.test(header) || field === "") {
    return Result.fail(new InvalidConfig({ option: "csrfTokens", reason: "header must be a header name, field non-empty" }))
  }
  return Result.succeed({ header: header.toLowerCase(), field })
}

/** The data and decoding options: the size limit, the migration, and what an undecodable session becomes. */
const dataOptions = (options: Options) =>
  Effect.gen(function*() {
    const maxBytes = yield* positiveInteger("maxBytes", options.maxBytes ?? 512 * 1024)
    if (options.migrate !== undefined && typeof options.migrate !== "function") {
      return yield* new InvalidConfig({ option: "migrate", reason: "must be a function" })
    }
    const onUndecodable = yield* oneOf("onUndecodable", options.onUndecodable ?? "reset", ["reset", "fail"])
    return { maxBytes, migrate: options.migrate, onUndecodable }
  })

/** Validates the options against the definition: every cookie attribute, timeout and the initial data. */
export const configure = <A, I>(definition: Definition<A, I>, options: Options) =>
  Effect.gen(function*() {
    const attributes = SessionCookie.attributes(options.cookie)
    const cookieName = options.cookie?.name ?? SessionCookie.defaultName(attributes)
    const violation = SessionCookie.violation(cookieName, attributes)
    if (violation !== undefined) return yield* new InvalidConfig({ option: "cookie", reason: violation })
    const from = options.absoluteTimeoutFrom ?? "regenerate"
    if (from !== "regenerate" && from !== "creation") {
      return yield* new InvalidConfig({ option: "absoluteTimeoutFrom", reason: `must be "regenerate" or "creation"` })
    }
    const codec = Envelope.dataCodec(definition.schema)
    if (Result.isFailure(codec.encode(definition.initial))) {
      return yield* new InvalidConfig({ option: "initial", reason: "does not encode with the schema" })
    }
    const resolved: Resolved<A> = {
      cookieName,
      attributes,
      secrets: yield* Effect.fromResult(secretsOf(options.cookie?.secrets)),
      policy: yield* policyOf(options),
      staleTimeout: yield* durationOption("staleTimeout", options.staleTimeout ?? "10 seconds", 0),
      restartOnRegenerate: from === "regenerate",
      csrf: yield* Effect.fromResult(csrfOf(options.csrfTokens)),
      codec,
      initial: definition.initial,
      ...yield* dataOptions(options),
      logFailure: FailureLog.make("effect-session/SessionMiddleware"),
      warnings: { insecureRequest: false, ignored: new Map() }
    }
    return resolved
  })
