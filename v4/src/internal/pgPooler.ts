/**
 * What a connection pooler between the pool and the server (PgBouncer) changes, found out at run time rather than
 * configured:
 *
 * - In transaction mode, each transaction may run on another server connection. Named prepared statements then go
 *   missing (SQLSTATE 26000 "prepared statement does not exist") or collide (42P05 "already exists"), unless the
 *   pooler keeps them itself (PgBouncer 1.21 and later with `max_prepared_statements`). The first time that happens
 *   the pool stops naming statements, says so in one log line, and runs the statement again unnamed: the error came
 *   at Parse or Bind, so nothing ran. Same text, same name (a hash of it), so a statement that another client left
 *   on a server connection is never a different one.
 * - PgBouncer refuses startup parameters it does not know, `statement_timeout` and `lock_timeout` among them: that
 *   is a configuration to change, named as such at start-up.
 */
import { Effect } from "effect"
import { InvalidConfig } from "../SessionError.js"

/** Whether a pool still names its statements. */
export class NamedStatements {
  #on = true

  /** Whether statements may still be named. */
  get on(): boolean {
    return this.#on
  }

  /** Turns names off for good; true the first time (whoever switches logs it). */
  switchOff(): boolean {
    const was = this.#on
    this.#on = false
    return was
  }
}

/** The server lost a named statement, or has one of that name from another client: a pooler in transaction mode. */
const lostCodes = new Set(["26000", "42P05"])

const isLost = (error: Error) => lostCodes.has((error as { code?: unknown }).code as string)

/**
 * Runs a statement named `name` (`undefined`: unnamed) through `run`, unnamed once names are off; the first lost
 * named statement switches them off (see the module's comment) and runs it again unnamed.
 */
export const named = <A>(
  state: NamedStatements,
  name: string | undefined,
  run: (name: string | undefined) => Effect.Effect<A, Error>
): Effect.Effect<A, Error> =>
  name === undefined || !state.on
    ? run(undefined)
    : Effect.catchIf(run(name), isLost, (error) =>
      Effect.andThen(
        state.switchOff()
          ? Effect.logWarning(
            `prepared statements turned off: the server lost one between transactions (SQLSTATE ${
              (error as { code?: string }).code
            }), as PgBouncer in transaction mode does before 1.21 or without max_prepared_statements. ` +
              "The store's statements are parsed each time from now on; set preparedStatements: false to start so."
          ).pipe(Effect.annotateLogs("service", "effect-session/PgPool"))
          : Effect.void,
        run(undefined)
      ))

/**
 * The configuration a refused connection points at, if any: a startup parameter the server (a pooler) does not take.
 * The reason says what to change; `undefined` for any other failure.
 */
export const refusedStartup = (cause: unknown): InvalidConfig | undefined => {
  const message = cause instanceof Error ? cause.message : ""
  const parameter = /unsupported startup parameter: (\w+)/.exec(message)?.[1]
  if (parameter === undefined) return undefined
  const option = parameter === "lock_timeout" ? "lockTimeout" : parameter === "statement_timeout" ? "statementTimeout" : "url"
  return new InvalidConfig({
    option,
    reason: `the server refused the startup parameter ${parameter}, as PgBouncer does for parameters it does not know. ` +
      "Set statementTimeout and lockTimeout to 0 and set the timeouts on the database role instead " +
      "(ALTER ROLE … SET statement_timeout = '3s'), or list them in PgBouncer's ignore_startup_parameters (which drops them)"
  })
}
