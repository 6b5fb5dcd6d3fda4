/**
 * The mechanical part of the Effect 3 → Effect 4 port: ordered text rewrites applied to every file of the Effect 3
 * line before its patch (port/patches/<path>.patch) is applied. A rewrite belongs here when it is right everywhere it
 * matches; anything else is a patch hunk. Keep each rule small and say what API change it stands for.
 */
export interface Rename {
  readonly why: string
  readonly from: RegExp
  readonly to: string
}

export const renames: ReadonlyArray<Rename> = [
  { why: "@effect/sql moved into effect", from: /from "@effect\/sql"/g, to: "from \"effect/sql\"" },
  { why: "@effect/platform's HTTP modules moved into effect/http", from: /from "@effect\/platform"/g, to: "from \"effect/http\"" }
]

/** Files of the Effect 3 line (paths relative to the repository root) that the Effect 4 line does not carry. */
export const skipped: ReadonlyArray<string> = []

/** The trees ported: the Effect 3 line's directory → the Effect 4 line's directory (relative to the repository root). */
export const trees: ReadonlyArray<readonly [string, string]> = [
  ["src", "v4/src"],
  ["test", "v4/test"],
  ["examples", "v4/examples"]
]
