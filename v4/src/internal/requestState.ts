/**
 * One request's session: where it came from (a tagged union), what the handler changed (the draft), what it asked
 * for (keep, rotate, destroy), and the pure decision of what saving it takes (the plan).
 */
import { Result } from "effect"
import type * as SessionKey from "../SessionKey.js"
import type * as SessionStore from "../SessionStore.js"
import * as ChangeLog from "./changeLog.js"
import * as Envelope from "./envelope.js"
import * as Renewal from "./renewal.js"

/**
 * What the request came with. `K` names a session in the request and `S` is what was read for it: a key and its
 * stored row (the defaults, server side), or a sealed cookie and what it opened to (the sealed mode).
 */
export type Origin<K = SessionKey.SessionKey, S = SessionStore.StoredSession> =
  /** No session: no cookie, a bad one, or a session that is gone, expired, outlived or undecodable. */
  | { readonly _tag: "None" }
  /** A live session. `expiresAt` is its stored expiry (epoch ms). */
  | {
    readonly _tag: "Live"
    readonly key: K
    readonly stored: S
    readonly expiresAt: number
  }
  /** A key rotated away (its stale period runs): readable as it was before the rotation, never written. */
  | { readonly _tag: "Stale"; readonly key: K }
  /** The store failed while loading: every use of the session fails, nothing is saved. */
  | { readonly _tag: "Unavailable"; readonly error: unknown }

/** What the handler did to the session, applied locally as it went. */
export interface Draft<A> {
  data: A
  /** `data` encoded by the schema, when known: what the save stores if nobody else wrote meanwhile. */
  encoded: { readonly of: A; readonly value: unknown } | undefined
  changes: Array<ChangeLog.Change<A>>
  /** Flash messages the request came with (consumed when it saves). */
  readonly flashIn: Readonly<Record<string, string>>
  /** Flash messages for the next request. */
  flashOut: Record<string, string>
  created: number
  remember: boolean
  rememberChanged: boolean
  /** A new owner for the session (`setSubject`), saved with it; `undefined`: unchanged. */
  owner: SessionStore.Owner | undefined
  /** The session's CSRF secret, if it has one; `csrfChanged` when this request made it (to be stored). */
  csrf: string | undefined
  csrfChanged: boolean
  /** The absolute timeout starts again (a login): `created` is this request's start. */
  restarted: boolean
  /** The value this session was loaded from and its envelope: a save onto the same value needs no decoding. */
  readonly loaded: { readonly value: string; readonly envelope: Envelope.Envelope } | undefined
}

/** What the handler asked for the session as a whole. */
export type Fate<K = SessionKey.SessionKey> =
  | { readonly _tag: "Keep" }
  /** A new key; the old one keeps a read-only copy for the stale period, unless `grace` is false. */
  | { readonly _tag: "Rotate"; readonly grace?: false | undefined }
  /** Destroyed: `key` is removed; changes made afterwards start a new session. */
  | { readonly _tag: "Destroy"; readonly key: K }

/** The whole per-request state (`K` and `S` as in {@link Origin}). */
export interface RequestState<A, K = SessionKey.SessionKey, S = SessionStore.StoredSession> {
  readonly startedAt: number
  origin: Origin<K, S>
  draft: Draft<A>
  fate: Fate<K>
}

/** A fresh draft holding `initial`. */
export const emptyDraft = <A>(initial: A, now: number, flashIn: Readonly<Record<string, string>> = {}): Draft<A> => ({
  data: initial,
  encoded: undefined,
  changes: [],
  flashIn,
  flashOut: {},
  created: now,
  remember: false,
  rememberChanged: false,
  owner: undefined,
  csrf: undefined,
  csrfChanged: false,
  restarted: false,
  loaded: undefined
})

/** The draft of a session loaded from the stored `value`, its `envelope` and the `data` decoded from it. */
export const loadedDraft = <A>(data: A, envelope: Envelope.Envelope, value?: string): Draft<A> => ({
  data,
  encoded: { of: data, value: envelope.d },
  changes: [],
  flashIn: envelope.f,
  flashOut: {},
  created: envelope.c,
  remember: envelope.r,
  rememberChanged: false,
  owner: undefined,
  csrf: envelope.t,
  csrfChanged: false,
  restarted: false,
  loaded: value === undefined ? undefined : { value, envelope }
})

/** Whether the handler changed what is stored (data, flash, remember, the CSRF secret). */
export const isDirty = <A>(draft: Draft<A>): boolean =>
  draft.changes.length > 0 || Object.keys(draft.flashOut).length > 0 || draft.rememberChanged || draft.csrfChanged

/** Whether saving creates a session: the handler stored something in it, or said who it belongs to. */
const isWorthKeeping = <A>(draft: Draft<A>): boolean => isDirty(draft) || draft.owner !== undefined

/** What saving takes. Expiries are epoch ms. */
export type Plan<K = SessionKey.SessionKey> =
  /** Nothing to store. */
  | { readonly _tag: "Skip" }
  /** A new session (after removing `clear`, a destroyed one, if any). */
  | { readonly _tag: "Create"; readonly clear: K | undefined; readonly expiresAt: number }
  /** Remove the session and expire the cookie. */
  | { readonly _tag: "Clear"; readonly key: K }
  /** Push the expiry out; nothing else changed. */
  | { readonly _tag: "Touch"; readonly key: K; readonly expiresAt: number }
  /** Set who the session belongs to; nothing else changed. */
  | { readonly _tag: "SetSubject"; readonly key: K }
  /**
   * Replay the changes onto the stored value; `expiresAt` when renewal is due. `required` is false when the only
   * change is consuming flash messages: a request that wrote nothing is not failed for it.
   */
  | {
    readonly _tag: "Write"
    readonly key: K
    readonly expiresAt: number | undefined
    readonly required: boolean
  }
  /**
   * Move the session to a new key holding the changes; the old key keeps its value for `staleTimeout` ms, or
   * `ends` at once (a privilege drop).
   */
  | {
    readonly _tag: "Rotate"
    readonly key: K
    readonly expiresAt: number
    readonly staleTimeout: number
    readonly ends?: true | undefined
  }

/**
 * What saving `state` at `now` takes. Pure: the same state and time give the same plan.
 *
 * A stale origin never plans a write (its writes were refused in the handler); an unavailable one plans nothing. A
 * new owner (`draft.owner`) goes with a creation or a rotation; on a write it follows it (see the executor).
 */
export const plan = <A, K, S>(
  state: RequestState<A, K, S>,
  now: number,
  policy: Renewal.Policy,
  staleTimeout: number
): Plan<K> => {
  const { draft, fate, origin } = state
  const target = Renewal.expiresAt(Renewal.lifetime(policy, draft.remember), draft.created, now)
  const create = (clear: K | undefined): Plan<K> =>
    isWorthKeeping(draft) && target > now ? { _tag: "Create", clear, expiresAt: target } : { _tag: "Skip" }
  if (fate._tag === "Destroy") {
    const next = create(fate.key)
    return next._tag === "Skip" ? { _tag: "Clear", key: fate.key } : next
  }
  switch (origin._tag) {
    case "None":
      return create(undefined)
    case "Stale":
    case "Unavailable":
      return { _tag: "Skip" }
    case "Live": {
      if (fate._tag === "Rotate") {
        return fate.grace === false
          ? { _tag: "Rotate", key: origin.key, expiresAt: target, staleTimeout: 0, ends: true }
          : {
            _tag: "Rotate",
            key: origin.key,
            expiresAt: target,
            staleTimeout: Math.max(0, Math.min(staleTimeout, origin.expiresAt - now))
          }
      }
      const renew = draft.rememberChanged ||
        Renewal.isDue(policy, Renewal.lifetime(policy, draft.remember), origin.expiresAt, target)
      const dirty = isDirty(draft)
      if (dirty || Object.keys(draft.flashIn).length > 0) {
        return { _tag: "Write", key: origin.key, expiresAt: renew ? target : undefined, required: dirty }
      }
      if (draft.owner !== undefined) return { _tag: "SetSubject", key: origin.key }
      return renew ? { _tag: "Touch", key: origin.key, expiresAt: target } : { _tag: "Skip" }
    }
  }
}

/**
 * The draft's changes replayed onto a stored envelope (pure: `modify` may call it more than once). The result is
 * both the envelope and its string, so a rotation needs no re-parse. Onto the very value the session was loaded
 * from, the draft already is the result: nothing is decoded, and the encoding made for the diff is the one stored.
 * A stored value that is no envelope, or whose data no longer decodes, is replaced by the draft itself.
 */
export const replay = <A>(
  draft: Draft<A>,
  codec: Envelope.DataCodec<A>
) =>
(stored: string): { readonly envelope: Envelope.Envelope; readonly value: string } => {
  const onto = (encoded: unknown, envelope: Envelope.Envelope) =>
    Envelope.make(
      encoded,
      ChangeLog.mergeFlash(envelope.f, draft.flashIn, draft.flashOut),
      draft.restarted ? draft.created : envelope.c,
      draft.rememberChanged ? draft.remember : envelope.r,
      draft.csrfChanged ? draft.csrf : envelope.t
    )
  let envelope: Envelope.Envelope
  if (draft.loaded !== undefined && stored === draft.loaded.value) {
    envelope = onto(encodedData(codec, draft), draft.loaded.envelope)
  } else {
    const parsed = Result.flatMap(
      Envelope.decode(stored),
      (envelope) => Result.map(codec.decode(envelope.d), (data) => ({ envelope, data }))
    )
    envelope = Result.match(parsed, {
      onFailure: () => toEnvelope(draft, codec),
      onSuccess: ({ data, envelope }) => {
        return onto(encode(codec, ChangeLog.replay(data, draft.changes)), envelope)
      }
    })
  }
  return { envelope, value: Envelope.encode(envelope) }
}

/** The draft as a new session's envelope. */
export const toEnvelope = <A>(draft: Draft<A>, codec: Envelope.DataCodec<A>): Envelope.Envelope =>
  Envelope.make(encodedData(codec, draft), draft.flashOut, draft.created, draft.remember, draft.csrf)

/** The draft's data encoded: the encoding made when it was set, if it is still the data's. */
const encodedData = <A>(codec: Envelope.DataCodec<A>, draft: Draft<A>): unknown =>
  draft.encoded !== undefined && draft.encoded.of === draft.data ? draft.encoded.value : encode(codec, draft.data)

/** Encodes data that the handler already proved encodable (`set`/`update` check it); a failure here is a defect. */
const encode = <A>(codec: Envelope.DataCodec<A>, data: A): unknown =>
  Result.getOrThrowWith(codec.encode(data), (reason) => new Error(`session data ${reason}`))
