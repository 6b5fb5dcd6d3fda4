import { describe, expect, it } from "@effect/vitest"
import { Result, Schema } from "effect"
import * as Envelope from "../../src/internal/envelope.js"

describe("Envelope", () => {
  it("round-trips through its stored form", () => {
    const envelope = Envelope.make({ user: "ada" }, { notice: "hi" }, 1234, true)
    expect(Result.getOrThrow(Envelope.decode(Envelope.encode(envelope)))).toEqual(envelope)
  })

  it("rejects what is not an envelope, saying why without quoting it", () => {
    for (const [stored, reason] of [
      ["not json", "not JSON"],
      ["[1,2]", "not a session envelope"],
      [JSON.stringify({ v: 2, d: {}, f: {}, c: 0, r: false }), "not a session envelope"],
      [JSON.stringify({ v: 1, d: {}, f: { a: 1 }, c: 0, r: false }), "not a session envelope"],
      [JSON.stringify({ v: 1, d: {}, f: {}, c: "0", r: false }), "not a session envelope"],
      [JSON.stringify({ v: 1, d: {}, f: {}, c: 0 }), "not a session envelope"]
    ] as const) {
      expect(Envelope.decode(stored)).toEqual(Result.fail(reason))
    }
  })

  it("keeps 0.1's rotated marker readable", () => {
    const legacy = JSON.stringify({ v: 1, d: {}, f: {}, c: 0, r: false, x: true })
    expect(Result.getOrThrow(Envelope.decode(legacy)).x).toBe(true)
  })

  it("the data codec reports schema failures by path only", () => {
    const codec = Envelope.dataCodec(Schema.Struct({ user: Schema.String, secret: Schema.Number }))
    const decoded = codec.decode({ user: "ada", secret: "hunter2" })
    expect(decoded).toEqual(Result.fail("data does not decode with the schema at secret"))
    expect(codec.encode({ user: "ada", secret: Number.NaN })).toEqual(Result.succeed({ user: "ada", secret: Number.NaN }))
  })
})
