/**
 * Who a session belongs to, checked and put in stored form: the subject and audience are non-empty, well-formed
 * strings of at most 256 bytes; metadata is a record of strings of at most 1 KiB as JSON. Pure: the store and the
 * middleware (when a handler calls `setSubject`) share it, so a bad owner is refused before anything is written.
 */
import { Result } from "effect"
import { InvalidSubject } from "../SessionError.js"
import type { Owner, StoredOwner } from "./storeModel.js"

/** The largest subject or audience, in UTF-8 bytes. */
export const maxNameBytes = 256

/** The largest metadata, as JSON in UTF-8 bytes. */
export const maxMetadataBytes = 1024

/** Text PostgreSQL can store: no lone surrogates, no NUL (the store's rule for values too). */
export const wellFormed = (text: string): boolean => text.isWellFormed() && !text.includes("\u0000")

/** A subject or audience, or `null` when absent. */
export const name = (
  field: "subject" | "audience",
  input: string | null | undefined
): Result.Result<string | null, InvalidSubject> => {
  if (input === undefined || input === null) return Result.succeed(null)
  const reason = typeof input !== "string" || input.length === 0
    ? "must be a non-empty string"
    : Buffer.byteLength(input, "utf8") > maxNameBytes
    ? `must be at most ${maxNameBytes} bytes`
    : !wellFormed(input)
    ? "must be a well-formed string without NUL characters"
    : undefined
  return reason === undefined ? Result.succeed(input) : Result.fail(new InvalidSubject({ field, reason }))
}

/** Metadata as stored (JSON), or `null` when absent. */
export const metadata = (input: Owner["metadata"]): Result.Result<string | null, InvalidSubject> => {
  if (input === undefined || input === null) return Result.succeed(null)
  const fail = (reason: string) => Result.fail(new InvalidSubject({ field: "metadata", reason }))
  if (typeof input !== "object" || Array.isArray(input)) return fail("must be a record of strings")
  for (const [key, value] of Object.entries(input)) {
    if (typeof value !== "string") return fail("must be a record of strings")
    if (!wellFormed(key) || !wellFormed(value)) return fail("must hold well-formed strings without NUL characters")
  }
  const json = JSON.stringify(input)
  const bytes = Buffer.byteLength(json, "utf8")
  return bytes > maxMetadataBytes
    ? fail(`is ${bytes} bytes as JSON, more than the maximum of ${maxMetadataBytes}`)
    : Result.succeed(json)
}

/** The owner to store; `undefined` when `owner.subject` is undefined (nothing to set). */
export const stored = (owner: Owner): Result.Result<StoredOwner | undefined, InvalidSubject> =>
  owner.subject === undefined
    ? Result.succeed(undefined)
    : Result.all({ subject: name("subject", owner.subject), audience: name("audience", owner.audience), metadata: metadata(owner.metadata) })

/** Nobody's. */
export const none: StoredOwner = { subject: null, audience: null, metadata: null }
