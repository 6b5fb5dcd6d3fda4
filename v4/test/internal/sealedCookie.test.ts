import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import { inspect } from "node:util"
import * as SealedCookie from "../../src/internal/sealedCookie.js"

const secret = (c: string) => Buffer.from(c.repeat(32))
const keys = SealedCookie.deriveKeys([secret("a")])
const name = "__Host-session"
const plaintext = SealedCookie.payload(1_000, JSON.stringify({ v: 1, d: { user: "ada", note: "é ✓" }, f: {}, c: 0, r: false }))
const opens = (value: string, with_ = keys, cookie = name) => SealedCookie.open(with_, cookie, value)

/** Every other base64url character at position `i` of `value`. */
const changedAt = (value: string, i: number) => {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  const next = alphabet[(alphabet.indexOf(value[i]!) + 1 + (i % 63)) % 64]!
  return value.slice(0, i) + next + value.slice(i + 1)
}

describe("SealedCookie", () => {
  it("a sealed value opens to its plaintext, under the cookie's name only", () => {
    const sealed = SealedCookie.seal(keys, name, plaintext)
    expect(sealed).toMatch(/^[A-Za-z0-9_-]+$/)
    expect(opens(sealed)).toEqual(Result.succeed(plaintext))
    expect(opens(sealed, keys, "session")).toEqual(Result.fail("forged")) // sealed for another cookie
  })

  it("a fresh nonce per seal: 1,000 seals of one plaintext, 1,000 nonces and values", () => {
    const values = Array.from({ length: 1_000 }, () => SealedCookie.seal(keys, name, plaintext))
    const nonces = values.map((value) => Buffer.from(value, "base64url").subarray(1, 13).toString("hex"))
    expect(new Set(values).size).toBe(1_000)
    expect(new Set(nonces).size).toBe(1_000)
  })

  it("a flipped bit anywhere in the sealed bytes, or a changed character anywhere in the value, never opens", () => {
    const sealed = SealedCookie.seal(keys, name, plaintext)
    const bytes = Buffer.from(sealed, "base64url")
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const flipped = Buffer.from(bytes)
        flipped[i]! ^= 1 << bit
        expect(Result.isFailure(opens(flipped.toString("base64url"))), `byte ${i} bit ${bit}`).toBe(true)
      }
    }
    for (let i = 0; i < sealed.length; i++) {
      expect(Result.isFailure(opens(changedAt(sealed, i))), `character ${i}`).toBe(true)
    }
  })

  it("every truncation, an extension, and what is not a sealed value never open", () => {
    const sealed = SealedCookie.seal(keys, name, plaintext)
    for (let length = 0; length < sealed.length; length++) {
      expect(Result.isFailure(opens(sealed.slice(0, length))), `length ${length}`).toBe(true)
    }
    expect(Result.isFailure(opens(sealed + "A"))).toBe(true)
    for (const junk of ["", "x", "not base64!", `${sealed}=`, "A".repeat(100), `${sealed.slice(0, 10)} ${sealed.slice(10)}`]) {
      expect(opens(junk)).toEqual(Result.fail("malformed"))
    }
    // Another version byte: malformed before any key is tried.
    const bytes = Buffer.from(sealed, "base64url")
    bytes[0] = 2
    expect(opens(bytes.toString("base64url"))).toEqual(Result.fail("malformed"))
  })

  it("only canonical base64url: another spelling of the same bytes is refused", () => {
    // 1 + 12 + n + 16 bytes with (29 + n) % 3 === 1 end in a character carrying 2 bits and 4 unused ones.
    const odd = SealedCookie.seal(keys, name, "1:{} ")
    expect(Buffer.from(odd, "base64url").length % 3).toBe(1)
    const last = odd[odd.length - 1]!
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    const sameBytes = odd.slice(0, -1) + alphabet[alphabet.indexOf(last) ^ 1]!
    expect(Buffer.from(sameBytes, "base64url").equals(Buffer.from(odd, "base64url"))).toBe(true)
    expect(opens(sameBytes)).toEqual(Result.fail("malformed"))
    expect(Result.isSuccess(opens(odd))).toBe(true)
  })

  it("a value sealed under another secret is forged; rotation: the first secret seals, every one opens", () => {
    const old = SealedCookie.seal(keys, name, plaintext)
    expect(opens(old, SealedCookie.deriveKeys([secret("b")]))).toEqual(Result.fail("forged"))
    const rotated = SealedCookie.deriveKeys([secret("b"), secret("a")])
    expect(opens(old, rotated)).toEqual(Result.succeed(plaintext))
    const fresh = SealedCookie.seal(rotated, name, plaintext)
    expect(opens(fresh, SealedCookie.deriveKeys([secret("b")]))).toEqual(Result.succeed(plaintext))
    expect(opens(fresh, keys)).toEqual(Result.fail("forged")) // the old secret alone cannot open the new seal
  })

  it("keys come from HKDF: one secret always gives the same key, and a key shows nothing when inspected", () => {
    const again = SealedCookie.deriveKeys([secret("a")])
    expect(opens(SealedCookie.seal(keys, name, plaintext), again)).toEqual(Result.succeed(plaintext))
    const shown = inspect(keys, { depth: 10, showHidden: true }) + JSON.stringify(keys)
    expect(shown).not.toContain("aaaa")
    expect(shown).not.toContain(keys.all[0]!.export().toString("hex").slice(0, 16))
    // The raw secret is not the key: HKDF derived another.
    expect(keys.all[0]!.export().equals(secret("a"))).toBe(false)
  })

  it("the format is stable: a value sealed by this version still opens (salt, info, associated data unchanged)", () => {
    const fixed = "AYfNioWgrmTuhew8_-hIkj8EUBnJk1-t2mcvUOA0Y914bVS-zwBVYF7HpWrKFYshjImv2BC0MtoYKifAKydKAUdJE8Z_2XDeEbyk6HuLZuBeKpDDVseN6T1uVi0_LdR7HtUOv3q1ps0"
    const opened = opens(fixed, SealedCookie.deriveKeys([secret("k")]))
    expect(opened).toEqual(Result.succeed(`1767225600000:{"v":1,"d":{"user":"ada"},"f":{},"c":1767222000000,"r":false}`))
  })

  it("the sealed length follows from the plaintext's (GCM adds no padding)", () => {
    for (let n = 1; n < 400; n += 7) {
      const text = "é".repeat(n)
      const bytes = Buffer.byteLength(text)
      expect(SealedCookie.seal(keys, name, text).length).toBe(SealedCookie.sealedLength(bytes))
    }
  })

  it("payloads: an expiry and an envelope, and nothing else", () => {
    expect(SealedCookie.parsePayload(SealedCookie.payload(42, "{\"a\":\"b:c\"}"))).toEqual({ expiresAt: 42, envelope: "{\"a\":\"b:c\"}" })
    for (const bad of ["", ":{}", "x:{}", "1.5:{}", "{}", "99999999999999999999:{}"]) {
      expect(SealedCookie.parsePayload(bad), bad).toBeUndefined()
    }
  })
})
