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
  { why: "@effect/platform's HTTP modules moved into effect/http", from: /from "@effect\/platform"/g, to: "from \"effect/http\"" },
  { why: "Effect.zipRight is Effect.andThen", from: /\bEffect\.zipRight\(/g, to: "Effect.andThen(" },
  { why: "Effect.catchAllCause is Effect.catchCause", from: /\bEffect\.catchAllCause\(/g, to: "Effect.catchCause(" },
  { why: "Effect.catchAll is Effect.catch", from: /\bEffect\.catchAll\(/g, to: "Effect.catch(" },
  { why: "Effect.either is Effect.result", from: /\bEffect\.either\b/g, to: "Effect.result" },
  { why: "Effect.forkDaemon is Effect.forkDetach", from: /\bEffect\.forkDaemon\b/g, to: "Effect.forkDetach" },
  { why: "Effect.async is Effect.callback", from: /\bEffect\.async\b/g, to: "Effect.callback" },
  { why: "Layer.scoped is Layer.effect", from: /\bLayer\.scoped\(/g, to: "Layer.effect(" },
  { why: "Layer.unwrapEffect and Layer.unwrapScoped are Layer.unwrap", from: /\bLayer\.unwrap(?:Effect|Scoped)\(/g, to: "Layer.unwrap(" },
  { why: "Duration.DurationInput is Duration.Input", from: /\bDuration\.DurationInput\b/g, to: "Duration.Input" },
  { why: "Config.Config.Wrap is Config.Wrap", from: /\bConfig\.Config\.Wrap\b/g, to: "Config.Wrap" },
  { why: "ConfigError.ConfigError is Config.ConfigError", from: /\bConfigError\.ConfigError\b/g, to: "Config.ConfigError" },
  { why: "Cause.TimeoutException is Cause.TimeoutError", from: /\bCause\.TimeoutException\b/g, to: "Cause.TimeoutError" },
  { why: "Option.fromNullable is Option.fromNullishOr", from: /\bOption\.fromNullable\(/g, to: "Option.fromNullishOr(" },
  { why: "Context.unsafeGet is Context.getUnsafe", from: /\bContext\.unsafeGet\(/g, to: "Context.getUnsafe(" },
  { why: "Schema.Defect is a function", from: /\bSchema\.Defect\b(?!\()/g, to: "Schema.Defect()" },
  { why: "@effect/vitest: it.scoped is it.effect", from: /\bit\.scoped\(/g, to: "it.effect(" },
  { why: "@effect/vitest: it.scopedLive is it.live", from: /\bit\.scopedLive\(/g, to: "it.live(" },
  { why: "Either is Result: right is succeed", from: /\bEither\.right\b/g, to: "Result.succeed" },
  { why: "Either is Result: left is fail", from: /\bEither\.left\b/g, to: "Result.fail" },
  { why: "Either is Result: isLeft is isFailure", from: /\bEither\.isLeft\b/g, to: "Result.isFailure" },
  { why: "Either is Result: isRight is isSuccess", from: /\bEither\.isRight\b/g, to: "Result.isSuccess" },
  { why: "Either is Result: mapLeft is mapError", from: /\bEither\.mapLeft\b/g, to: "Result.mapError" },
  { why: "Either is Result: getRight is getSuccess", from: /\bEither\.getRight\b/g, to: "Result.getSuccess" },
  { why: "Either is Result: getLeft is getFailure", from: /\bEither\.getLeft\b/g, to: "Result.getFailure" },
  { why: "Either is Result (the same names otherwise: map, flatMap, match, getOrThrow, all…)", from: /\bEither\.(Either|map|flatMap|match|getOrThrow|getOrThrowWith|all)\b/g, to: "Result.$1" },
  { why: "unsafe… is …Unsafe: DateTime.makeUnsafe", from: /\bDateTime\.unsafeMake\b/g, to: "DateTime.makeUnsafe" },
  { why: "unsafe… is …Unsafe: currentTimeMillisUnsafe", from: /\.unsafeCurrentTimeMillis\b/g, to: ".currentTimeMillisUnsafe" },
  { why: "HttpApp's functions are HttpEffect's", from: /\bHttpApp\.appendPreResponseHandler\b/g, to: "HttpEffect.appendPreResponseHandler" }
]

/** Files of the Effect 3 line (paths relative to the repository root) that the Effect 4 line does not carry. */
export const skipped: ReadonlyArray<string> = []

/**
 * The trees ported: the Effect 3 line's directory (or file) → the Effect 4 line's (relative to the repository root).
 * The test configurations are the same for both lines; the two bench files are the Effect 4 twins of what
 * `bench/lines.ts` runs, under v4/ so that they load Effect 4.
 */
export const trees: ReadonlyArray<readonly [string, string]> = [
  ["src", "v4/src"],
  ["test", "v4/test"],
  ["examples", "v4/examples"],
  ["vitest.config.ts", "v4/vitest.config.ts"],
  ["vitest.backends.config.ts", "v4/vitest.backends.config.ts"],
  ["vitest.faults.config.ts", "v4/vitest.faults.config.ts"],
  ["vitest.browser.config.ts", "v4/vitest.browser.config.ts"],
  ["bench/lib/measure.ts", "v4/bench/measure.ts"],
  ["bench/lines/storeWorker.ts", "v4/bench/storeWorker.ts"]
]
