import { describe, expect, it } from "@effect/vitest"
import { Duration, Result, Schema } from "effect"
import * as Envelope from "../../src/internal/envelope.js"
import type * as Renewal from "../../src/internal/renewal.js"
import * as RequestState from "../../src/internal/requestState.js"
import { SessionKey } from "../../src/index.js"

const Data = Schema.Struct({ user: Schema.NullOr(Schema.String), n: Schema.Number })
type Data = typeof Data.Type
const codec = Envelope.dataCodec(Data)
const policy: Renewal.Policy = {
  normal: { idle: 1_000, absolute: 10_000 },
  remembered: { idle: 5_000, absolute: 50_000 },
  threshold: 0.5
}
const key = SessionKey.generate()
const stored = { value: "", expiresIn: Duration.millis(1_000), revision: "1.x", rotated: false, subject: null, audience: null, id: "x" }

const state = (origin: RequestState.Origin, edit: (draft: RequestState.Draft<Data>) => void = () => {}) => {
  const draft = RequestState.emptyDraft<Data>({ user: null, n: 0 }, 0)
  edit(draft)
  return { startedAt: 0, origin, draft, fate: { _tag: "Keep" } } as RequestState.RequestState<Data>
}
const live = (expiresAt: number): RequestState.Origin => ({ _tag: "Live", key, stored, expiresAt })
const increment = (draft: RequestState.Draft<Data>) => void draft.changes.push({ _tag: "Update", f: (d) => ({ ...d, n: d.n + 1 }) })
const plan = (s: RequestState.RequestState<Data>, now = 100) => RequestState.plan(s, now, policy, 3_000)

describe("RequestState.plan", () => {
  it("no session and no change: nothing; a change creates one", () => {
    expect(plan(state({ _tag: "None" }))).toEqual({ _tag: "Skip" })
    expect(plan(state({ _tag: "None" }, increment))).toEqual({ _tag: "Create", clear: undefined, expiresAt: 1_100 })
  })

  it("a change after the absolute lifetime creates nothing", () => {
    expect(plan(state({ _tag: "None" }, increment), 10_001)).toEqual({ _tag: "Skip" })
  })

  it("a stale (rotated) or unavailable session never plans a write, whatever the handler did", () => {
    const stale = state({ _tag: "Stale", key }, increment)
    stale.fate = { _tag: "Rotate" }
    expect(plan(stale)).toEqual({ _tag: "Skip" })
    expect(plan(state({ _tag: "Unavailable", error: new Error("down") }, increment))).toEqual({ _tag: "Skip" })
  })

  it("destroy: a clear, or a clear and a new session when changes followed", () => {
    const destroyed = state({ _tag: "None" })
    destroyed.fate = { _tag: "Destroy", key }
    expect(plan(destroyed)).toEqual({ _tag: "Clear", key })
    const restarted = state({ _tag: "None" }, (d) => void (d.flashOut["notice"] = "bye"))
    restarted.fate = { _tag: "Destroy", key }
    expect(plan(restarted)).toEqual({ _tag: "Create", clear: key, expiresAt: 1_100 })
  })

  it("rotation: the new expiry, and a stale period no longer than the session had left", () => {
    const rotating = state(live(1_100))
    rotating.fate = { _tag: "Rotate" }
    expect(plan(rotating)).toEqual({ _tag: "Rotate", key, expiresAt: 1_100, staleTimeout: 1_000 })
    const almostOver = state(live(150))
    almostOver.fate = { _tag: "Rotate" }
    expect(plan(almostOver)).toMatchObject({ _tag: "Rotate", staleTimeout: 50 })
  })

  it("changes on a live session: a write, extending the expiry only when renewal is due", () => {
    expect(plan(state(live(1_000), increment))).toEqual({ _tag: "Write", key, expiresAt: undefined, required: true })
    expect(plan(state(live(500), increment), 100)).toEqual({ _tag: "Write", key, expiresAt: 1_100, required: true })
  })

  it("only consuming flash messages is a write that may fail quietly", () => {
    const reader = state(live(1_000))
    reader.draft = { ...reader.draft, flashIn: { notice: "hi" } }
    expect(plan(reader)).toEqual({ _tag: "Write", key, expiresAt: undefined, required: false })
  })

  it("no change: a touch when renewal is due, else nothing", () => {
    expect(plan(state(live(1_000)))).toEqual({ _tag: "Skip" })
    expect(plan(state(live(500)))).toEqual({ _tag: "Touch", key, expiresAt: 1_100 })
  })

  it("remember-me changes renew at once, with the remembered timeouts", () => {
    const remembered = state(live(1_000), (d) => {
      d.remember = true
      d.rememberChanged = true
    })
    expect(plan(remembered)).toEqual({ _tag: "Write", key, expiresAt: 5_100, required: true })
  })
})

describe("RequestState.replay", () => {
  it("applies the draft's changes to the stored value, keeping what it did not touch", () => {
    const draft = RequestState.emptyDraft<Data>({ user: null, n: 0 }, 0, { notice: "read" })
    increment(draft)
    draft.flashOut["next"] = "added"
    const storedValue = Envelope.encode(Envelope.make({ user: "ada", n: 41 }, { notice: "read", other: "kept" }, 7, true))
    const { envelope, value } = RequestState.replay(draft, codec)(storedValue)
    expect(envelope).toEqual(Envelope.make({ user: "ada", n: 42 }, { other: "kept", next: "added" }, 7, true))
    expect(Result.getOrThrow(Envelope.decode(value))).toEqual(envelope)
  })

  it("a stored value that no longer decodes is replaced by the draft", () => {
    const draft = RequestState.emptyDraft<Data>({ user: "me", n: 1 }, 5)
    expect(RequestState.replay(draft, codec)("garbage").envelope).toEqual(Envelope.make({ user: "me", n: 1 }, {}, 5, false))
  })
})
