import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import * as ChangeLog from "../../src/internal/changeLog.js"

type Data = { readonly a?: string; readonly b?: string; readonly n: number }
const identity = (data: unknown) => data

describe("ChangeLog", () => {
  it("diff keeps only the top-level fields that changed, and the deleted ones", () => {
    const change = ChangeLog.diff<Data>({ a: "1", b: "2", n: 0 }, { a: "1", n: 5 }, identity)
    expect(change).toEqual({ _tag: "Patch", set: { n: 5 }, deleted: ["b"] })
  })

  it("a patch replayed onto a value changed meanwhile keeps the other fields", () => {
    const mine = ChangeLog.diff<Data>({ n: 0 }, { a: "mine", n: 0 }, identity)
    expect(ChangeLog.replay<Data>({ b: "theirs", n: 7 }, [mine])).toEqual({ a: "mine", b: "theirs", n: 7 })
  })

  it("updates are re-applied, so counters add up", () => {
    const increment: ChangeLog.Change<Data> = { _tag: "Update", f: (d) => ({ ...d, n: d.n + 1 }) }
    expect(ChangeLog.replay<Data>({ n: 10 }, [increment, increment])).toEqual({ n: 12 })
  })

  it("data that is not a record is replaced whole", () => {
    expect(ChangeLog.diff<ReadonlyArray<number>>([1], [1, 2], identity)).toEqual({ _tag: "Replace", data: [1, 2] })
    expect(ChangeLog.replay<ReadonlyArray<number>>([9], [{ _tag: "Replace", data: [1, 2] }])).toEqual([1, 2])
  })

  it("a schema that renames fields gets a replacement, never a patch that misses them", () => {
    const Renamed = Schema.Struct({ userName: Schema.NullOr(Schema.String) }).pipe(Schema.encodeKeys({ userName: "user_name" }))
    const encode = (data: typeof Renamed.Type) => Schema.encodeSync(Renamed)(data)
    const change = ChangeLog.diff<typeof Renamed.Type>({ userName: null }, { userName: "ada" }, encode)
    expect(change).toEqual({ _tag: "Replace", data: { userName: "ada" } })
    expect(ChangeLog.replay<typeof Renamed.Type>({ userName: null }, [change])).toEqual({ userName: "ada" })
  })

  it("diff compares encoded forms, so equal data in new objects is no change", () => {
    const change = ChangeLog.diff<Data>({ a: "x", n: 1 }, { a: "x", n: 1 }, identity)
    expect(change).toEqual({ _tag: "Patch", set: {}, deleted: [] })
  })

  it("flash: consumed messages leave, changed or new ones stay, added ones join", () => {
    expect(ChangeLog.mergeFlash({ a: "old", b: "changed since", c: "new" }, { a: "old", b: "read" }, { d: "added" }))
      .toEqual({ b: "changed since", c: "new", d: "added" })
  })
})
