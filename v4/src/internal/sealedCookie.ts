/**
 * Sealing: a session's data sealed into its cookie with AES-256-GCM, and opened again. Pure apart from the nonce.
 *
 * A sealed value is `base64url(version ‖ nonce ‖ ciphertext ‖ tag)`: one version byte (1), a fresh 96-bit nonce
 * from the OS CSPRNG per seal, the ciphertext (as long as the plaintext) and GCM's 128-bit tag. The version byte
 * and the cookie's name are authenticated as associated data, so a value sealed for another cookie (another
 * session tag, another app sharing the secret) does not open. The plaintext is `<expiry, epoch ms>:<envelope>`.
 *
 * Keys: HKDF-SHA256 of each secret (salt and info fixed, naming this use), so a secret shared with another
 * purpose (signing) still gives an unrelated key. The first key seals; every key opens, so secrets rotate by
 * putting a new one first.
 */
import { Result } from "effect"
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, type KeyObject, randomBytes } from "node:crypto"

/** The format's version, the first byte of every sealed value. */
const version = 1
const nonceBytes = 12
const tagBytes = 16
/** Version, nonce and tag: what sealing adds to the plaintext, in bytes. */
const overheadBytes = 1 + nonceBytes + tagBytes

/** HKDF's salt and info: fixed, naming this use of the secrets. */
const salt = "effect-session/sealed-cookie"
const info = "AES-256-GCM key, format 1"

/** The keys of a list of secrets, the first sealing. Key objects, so no inspection or log shows the bytes. */
export interface Keys {
  readonly all: ReadonlyArray<KeyObject>
}

/** The keys derived from `secrets` (each at least 32 bytes, checked by the settings), in the same order. */
export const deriveKeys = (secrets: ReadonlyArray<Uint8Array>): Keys => ({
  all: secrets.map((secret) => createSecretKey(Buffer.from(hkdfSync("sha256", secret, salt, info, 32))))
})

/** The associated data: the version and the cookie's name. */
const associated = (cookieName: string) => Buffer.from(`${version}:${cookieName}`, "utf8")

/** Why a cookie did not open: not a sealed value at all, or one no key authenticates (tampered, cut, foreign). */
export type OpenFailure = "malformed" | "forged"

/** `plaintext` sealed under the first key, for the cookie `cookieName`. */
export const seal = (keys: Keys, cookieName: string, plaintext: string): string => {
  const nonce = randomBytes(nonceBytes)
  const cipher = createCipheriv("aes-256-gcm", keys.all[0]!, nonce, { authTagLength: tagBytes })
  cipher.setAAD(associated(cookieName))
  const sealed = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()])
  return Buffer.concat([Buffer.of(version), nonce, sealed, cipher.getAuthTag()]).toString("base64url")
}

/** The plaintext under one key, if it authenticates. */
const openWith = (key: KeyObject, aad: Buffer, bytes: Buffer): string | undefined => {
  const decipher = createDecipheriv("aes-256-gcm", key, bytes.subarray(1, 1 + nonceBytes), { authTagLength: tagBytes })
  decipher.setAAD(aad)
  decipher.setAuthTag(bytes.subarray(bytes.length - tagBytes))
  try {
    return Buffer.concat([decipher.update(bytes.subarray(1 + nonceBytes, bytes.length - tagBytes)), decipher.final()])
      .toString("utf8")
  } catch {
    return undefined
  }
}

/**
 * The plaintext of a sealed `value`, tried under every key (newest first); else why not. Only canonical base64url
 * is read: two spellings of the same bytes would make a changed cookie open.
 */
export const open = (keys: Keys, cookieName: string, value: string): Result.Result<string, OpenFailure> => {
  if (!/^[A-Za-z0-9_-]+$/.test(value)) return Result.fail("malformed")
  const bytes = Buffer.from(value, "base64url")
  if (bytes.length <= overheadBytes || bytes[0] !== version || bytes.toString("base64url") !== value) {
    return Result.fail("malformed")
  }
  const aad = associated(cookieName)
  for (const key of keys.all) {
    const plaintext = openWith(key, aad, bytes)
    if (plaintext !== undefined) return Result.succeed(plaintext)
  }
  return Result.fail("forged")
}

/** The length in characters of the sealed value of a plaintext of `plaintextBytes` UTF-8 bytes (GCM adds none). */
export const sealedLength = (plaintextBytes: number): number => Math.ceil(((plaintextBytes + overheadBytes) * 4) / 3)

/** What a sealed cookie holds: its expiry (epoch ms) and the session's envelope, as the envelope module writes it. */
export interface Payload {
  readonly expiresAt: number
  readonly envelope: string
}

/** The plaintext of a payload. */
export const payload = (expiresAt: number, envelope: string): string => `${expiresAt}:${envelope}`

/** The payload of a plaintext, if it is one (a key that opened it sealed it, so only a bug makes it not). */
export const parsePayload = (plaintext: string): Payload | undefined => {
  const colon = plaintext.indexOf(":")
  const expiresAt = Number(plaintext.slice(0, colon))
  return colon > 0 && Number.isSafeInteger(expiresAt) ? { expiresAt, envelope: plaintext.slice(colon + 1) } : undefined
}
