/**
 * A request's changes to its session, kept as a log so they can be replayed onto whatever value is stored when the
 * request saves: overlapping requests then keep each other's changes instead of the last one overwriting the rest.
 */
import { Predicate } from "effect"

/** One change. `Patch` sets and deletes top-level fields; `Update` re-applies a function (counters add up). */
export type Change<A> =
  | { readonly _tag: "Patch"; readonly set: Readonly<Record<string, unknown>>; readonly deleted: ReadonlyArray<string> }
  | { readonly _tag: "Replace"; readonly data: A }
  | { readonly _tag: "Update"; readonly f: (data: A) => A }

/**
 * The change from `before` to `after`: the top-level fields whose encoded forms differ when both are records, else
 * a replacement. `encode` gives the encoded form, or `undefined` when there is none.
 */
export const diff = <A>(before: A, after: A, encode: (data: A) => unknown): Change<A> =>
  diffEncoded(after, encode(before), encode(after)) ?? { _tag: "Patch", set: {}, deleted: [] }

/**
 * {@link diff} of data whose encoded forms are known; `undefined` when nothing changed (the encoded forms are
 * equal), so that setting the data it already holds writes nothing.
 */
export const diffEncoded = <A>(after: A, encodedBefore: unknown, encodedAfter: unknown): Change<A> | undefined => {
  if (!Predicate.isObject(encodedBefore) || !Predicate.isObject(encodedAfter) || !Predicate.isObject(after) || !sameKeys(after, encodedAfter)) {
    return JSON.stringify(encodedBefore) === JSON.stringify(encodedAfter) ? undefined : { _tag: "Replace", data: after }
  }
  const set: Record<string, unknown> = {}
  for (const key of Object.keys(after)) {
    if (JSON.stringify(encodedAfter[key]) !== JSON.stringify(encodedBefore[key])) set[key] = after[key]
  }
  const deleted = Object.keys(encodedBefore).filter((key) => !(key in encodedAfter))
  return Object.keys(set).length === 0 && deleted.length === 0 ? undefined : { _tag: "Patch", set, deleted }
}

/**
 * Whether data and its encoded form use the same field names: a patch is keyed by them on both sides, so a schema
 * that renames fields (`Schema.fromKey`) gets whole replacements instead of patches that would miss the fields.
 */
const sameKeys = (data: Record<string, unknown>, encoded: Record<string, unknown>): boolean => {
  const keys = Object.keys(data)
  const encodedKeys = Object.keys(encoded)
  return keys.length === encodedKeys.length && keys.every((key) => key in encoded)
}

/** One change applied to `data`. */
export const apply = <A>(data: A, change: Change<A>): A => {
  switch (change._tag) {
    case "Replace":
      return change.data
    case "Update":
      return change.f(data)
    case "Patch": {
      if (!Predicate.isObject(data)) return data
      const next: Record<string, unknown> = { ...data, ...change.set }
      for (const key of change.deleted) delete next[key]
      return next as A
    }
  }
}

/** The log applied in order to `data`. */
export const replay = <A>(data: A, changes: ReadonlyArray<Change<A>>): A => changes.reduce(apply, data)

/**
 * The flash messages to store: those stored now, minus the ones this request read (unless they changed since),
 * plus the ones it added.
 */
export const mergeFlash = (
  stored: Readonly<Record<string, string>>,
  consumed: Readonly<Record<string, string>>,
  added: Readonly<Record<string, string>>
): Record<string, string> => {
  const flash: Record<string, string> = { ...stored }
  for (const key of Object.keys(consumed)) {
    if (flash[key] === consumed[key]) delete flash[key]
  }
  return Object.assign(flash, added)
}
