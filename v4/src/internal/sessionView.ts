/**
 * The handlers' view of a request's session, the part both modes share: the data (`get`, `set`, `update`), the
 * flash messages that came, a new key or seal (`regenerate`, `dropPrivileges`), `destroy`, remember-me, the CSRF
 * token and `isNew`. Changes go to the request's draft, which the mode's save applies. Each mode extends it: the
 * server-side mode (`requestSession.ts`) with `flash`, the subject and the subject's sessions; the sealed mode
 * (`sealedSession.ts`) with a `flash` that keeps within the cookie's size. What "too large" means is the mode's.
 */
import { Effect, Result } from "effect"
import * as ChangeLog from "./changeLog.js"
import * as CsrfToken from "./csrfToken.js"
import type { SessionTooLarge } from "./httpErrors.js"
import type { Resolved } from "./middlewareSettings.js"
import * as RequestState from "./requestState.js"

/**
 * The shared view. `K` and `S` are the mode's (see `RequestState.Origin`); `U` is what every member fails with
 * when the session could not be loaded, `C` how a write through a rotated key is refused (`never` in a mode that
 * has neither). Its Effect-valued members are getters, made when a handler reads them; its functions are bound, so
 * handlers may destructure them.
 */
export abstract class SessionView<A, K, S, U, C> {
  /** Set when the load failed: every member fails with it. The origin is settled by the load, before any handler. */
  readonly #unavailable: Effect.Effect<never, U> | undefined
  // Private fields (not TypeScript's `private`): the state holds the key, which no log or inspection may show.
  readonly #settings: Resolved<A>
  readonly #state: RequestState.RequestState<A, K, S>

  constructor(
    settings: Resolved<A>,
    state: RequestState.RequestState<A, K, S>,
    unavailable: Effect.Effect<never, U> | undefined
  ) {
    this.#settings = settings
    this.#state = state
    this.#unavailable = unavailable
  }

  /** A write through a rotated key: how it is refused. */
  protected abstract refused(): Effect.Effect<never, C>
  /** Why the session would be too large to save holding `data` (encoded as `encoded`), if it would. */
  protected abstract tooLarge(data: A, encoded: unknown): SessionTooLarge | undefined

  /** The request's state (a getter: not an own property, so no inspection shows it). */
  protected get current(): RequestState.RequestState<A, K, S> {
    return this.#state
  }
  protected get settings(): Resolved<A> {
    return this.#settings
  }
  /** The failure of every member when the load failed, else `undefined`. */
  protected get unavailable(): Effect.Effect<never, U> | undefined {
    return this.#unavailable
  }

  protected read<X>(f: () => X): Effect.Effect<X, U> {
    return this.#unavailable ?? Effect.sync(f)
  }
  protected write<X = void>(f: () => X): Effect.Effect<X, U | C> {
    return this.#unavailable ?? Effect.suspend(() => this.#state.origin._tag === "Stale" ? this.refused() : Effect.sync(f))
  }
  /** Data encoded by the schema; data it cannot encode is a bug in the handler: it dies there, with the reason. */
  #encode(data: A): unknown {
    return Result.getOrThrowWith(this.#settings.codec.encode(data), (reason) => new Error(`session data ${reason}`))
  }
  /** Records new data and its encoding, unless that makes the session too large (then nothing changes). */
  #record(data: A, encoded: unknown, change: ChangeLog.Change<A>): Effect.Effect<void, SessionTooLarge> {
    const error = this.tooLarge(data, encoded)
    if (error !== undefined) return Effect.fail(error)
    const { draft } = this.#state
    draft.changes.push(change)
    draft.data = data
    draft.encoded = { of: data, value: encoded }
    return Effect.void
  }
  /** The draft's data encoded: the encoding made when it was set, if it is still the data's. */
  protected encodedDraft(): unknown {
    const { draft } = this.#state
    return draft.encoded !== undefined && draft.encoded.of === draft.data ? draft.encoded.value : this.#encode(draft.data)
  }
  /** Ends the request's session: its key is destroyed on save; later changes start a new one. */
  protected endCurrent(): void {
    const state = this.#state
    const { origin } = state
    if (origin._tag === "Live" || origin._tag === "Stale") state.fate = { _tag: "Destroy", key: origin.key }
    state.origin = { _tag: "None" }
    state.draft = RequestState.emptyDraft(this.#settings.initial, state.startedAt, state.draft.flashIn)
  }
  /** A new key for the session: its CSRF secret changes with it, and (by default) its absolute timeout restarts. */
  #rotate(fate: RequestState.Fate<K> & { readonly _tag: "Rotate" }): void {
    const { draft, fate: current, startedAt } = this.#state
    if (current._tag === "Destroy") return
    if (current._tag === "Rotate") {
      if (fate.grace === false) this.#state.fate = fate // a privilege drop outranks a login's grace copy
      return
    }
    this.#state.fate = fate
    if (this.#settings.restartOnRegenerate) {
      draft.created = startedAt
      draft.restarted = true
    }
    if (draft.csrf !== undefined) {
      draft.csrf = CsrfToken.newSecret()
      draft.csrfChanged = true
    }
  }

  get get(): Effect.Effect<A, U> {
    return this.read(() => this.#state.draft.data)
  }
  readonly set = (data: A): Effect.Effect<void, U | C | SessionTooLarge> =>
    Effect.flatten(this.write(() => {
      const encoded = this.#encode(data)
      const change = ChangeLog.diffEncoded(data, this.encodedDraft(), encoded)
      // The data it already holds: nothing to save.
      return change === undefined ? Effect.void : this.#record(data, encoded, change)
    }))
  readonly update = (f: (data: A) => A): Effect.Effect<void, U | C | SessionTooLarge> =>
    Effect.flatten(this.write(() => {
      const data = f(this.#state.draft.data)
      const encoded = this.#encode(data)
      // Unchanged: nothing to save.
      if (JSON.stringify(encoded) === JSON.stringify(this.encodedDraft())) return Effect.void
      return this.#record(data, encoded, { _tag: "Update", f })
    }))
  get flashes(): Effect.Effect<Readonly<Record<string, string>>, U> {
    return this.read(() => this.#state.draft.flashIn)
  }
  get regenerate(): Effect.Effect<void, U | C> {
    return this.write(() => this.#rotate({ _tag: "Rotate" }))
  }
  get dropPrivileges(): Effect.Effect<void, U | C> {
    return this.write(() => this.#rotate({ _tag: "Rotate", grace: false }))
  }
  // Through a rotated key, destroy is a write like any other: refused (it would end the stale copy early and let
  // in-flight requests of the new session's owner mint an anonymous session over the new cookie).
  get destroy(): Effect.Effect<void, U | C> {
    return this.write(() => this.endCurrent())
  }
  get csrfToken(): Effect.Effect<string, U> {
    return this.#unavailable ?? Effect.sync(() => {
      const { draft, origin } = this.#state
      // Through a stale key the secret is read, never made: the key is read-only.
      if (draft.csrf === undefined && origin._tag !== "Stale") {
        draft.csrf = CsrfToken.newSecret()
        draft.csrfChanged = true
      }
      return draft.csrf === undefined ? "" : CsrfToken.mask(draft.csrf)
    })
  }
  readonly rememberMe = (remember: boolean): Effect.Effect<void, U | C> =>
    this.write(() => {
      const { draft } = this.#state
      draft.rememberChanged = draft.rememberChanged || remember !== draft.remember
      draft.remember = remember
    })
  get isNew(): Effect.Effect<boolean, U> {
    return this.read(() => this.#state.origin._tag === "None")
  }
}
