/**
 * Bytes as text. Every id the store handles is a `Buffer` (a SHA-256 digest, or decoded from hex or base64url), read
 * in place; any other `Uint8Array` is viewed as one first.
 */

/** `bytes` (their first `length`) as `hex`, `base64` or `base64url`. */
export const encode = (bytes: Uint8Array, encoding: "hex" | "base64" | "base64url", length = bytes.byteLength): string =>
  (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString(encoding, 0, length)
