/**
 * The library's spans and metrics. Spans never carry a session key, its hash, or a value; metrics count and time
 * operations, never identify sessions.
 *
 * Spans are created only when a tracer other than Effect's built-in one is installed (an OpenTelemetry exporter, a
 * test tracer): the built-in one records nothing, so without one the hot path pays nothing for them. Metrics are
 * Effect `Metric`s, always on.
 */
import { Cause, Clock, Context, Effect, FiberRef, Metric, MetricBoundaries, MetricLabel, Tracer } from "effect"

/** Effect's built-in tracer, the default when no other is installed. */
const builtinTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

/**
 * Whether spans and metrics are recorded, for the fiber that runs an operation (default `true`). The benchmark
 * runs the same code with it off (`Effect.locally(currentEnabled, false)`) to measure what they cost.
 */
export const currentEnabled: FiberRef.FiberRef<boolean> = FiberRef.unsafeMake(true)

/** The store operations that are measured. */
export type StoreOperation =
  | "generate"
  | "get"
  | "set"
  | "touch"
  | "modify"
  | "rotate"
  | "clear"
  | "deleteExpired"
  | "setSubject"
  | "list"
  | "revoke"
  | "revokeSubject"
  | "all"

const storeOperations: ReadonlyArray<StoreOperation> = [
  "generate",
  "get",
  "set",
  "touch",
  "modify",
  "rotate",
  "clear",
  "deleteExpired",
  "setSubject",
  "list",
  "revoke",
  "revokeSubject",
  "all"
]

/**
 * A metric's update for one operation. The label array is made once: Effect caches a metric's hook by the identity
 * of the labels passed, whereas `Metric.tagged` builds a new array on every update and so looks the hook up by hash.
 */
const byOperation = (metric: Metric.Metric<any, number, any>) =>
  new Map(storeOperations.map((operation) => {
    const labels = [MetricLabel.make("operation", operation)]
    return [operation, (value: number) => metric.unsafeUpdate(value, labels)] as const
  }))

/** A counter that only ever grows (exported as a total). */
const total = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

/** Duration of store operations, by operation. */
export const operationDuration = Metric.histogram(
  "effect_session_store_operation_seconds",
  MetricBoundaries.exponential({ start: 0.0001, factor: 2, count: 16 }),
  "Duration of session store operations"
)
const durations = byOperation(operationDuration)

/** Store operations that failed (the backend failed or did not answer in time), by operation. */
export const operationFailures = total(
  "effect_session_store_failures_total",
  "Session store operations that failed with SessionStoreError"
)
const failures = byOperation(operationFailures)

/** Compare-and-set writes that lost a race with another process and were retried. */
export const writeConflicts = total(
  "effect_session_write_conflicts_total",
  "Compare-and-set writes that lost to a concurrent write and were retried"
)

/** Writes merged into another's statement by the write queue (each saved a statement). */
export const writesMerged = total(
  "effect_session_writes_merged_total",
  "Session writes merged into one compare-and-set with others queued on the same session"
)

/** Runs of the cleanup fiber, and the sessions they removed. */
export const cleanupRuns = total("effect_session_cleanup_runs_total", "Runs of the expired-session cleanup")
export const cleanupRemoved = total("effect_session_cleanup_removed_total", "Expired sessions removed by cleanup")

/** Sessions created, rotated and destroyed by the HTTP middleware. */
export const sessionsCreated = total(
  "effect_session_sessions_created_total",
  "Sessions created by the HTTP middleware"
)
export const sessionsRotated = total(
  "effect_session_sessions_rotated_total",
  "Sessions moved to a new key by the HTTP middleware"
)
export const sessionsDestroyed = total(
  "effect_session_sessions_destroyed_total",
  "Sessions ended by the HTTP middleware"
)

/**
 * Session cookies ignored, by reason: malformed, duplicated or oversized; unsigned or forged (signed or sealed
 * cookies); expired (a sealed cookie past its sealed expiry).
 */
export const cookiesRejected = total(
  "effect_session_cookies_rejected_total",
  "Session cookies ignored as malformed, duplicated, oversized, unsigned, forged or (sealed) expired"
)

/** Writes refused with a 409 (a rotated key, or a session that ended meanwhile), by reason. */
export const writesRefused = total(
  "effect_session_writes_refused_total",
  "Session writes refused (SessionConflict), by reason"
)

/** Cross-origin requests refused by CsrfProtection, by reason (the header that refused them). */
export const csrfRefused = total(
  "effect_session_csrf_refused_total",
  "Cross-origin requests refused by CsrfProtection, by reason"
)

/** Adds `by` to a counter when enabled; `tags` are pairs. */
export const count = (
  counter: Metric.Metric.Counter<number>,
  by = 1,
  ...tags: ReadonlyArray<readonly [string, string]>
): Effect.Effect<void> => {
  if (by === 0) return Effect.void
  return Effect.withFiberRuntime((fiber) => {
    if (!fiber.getFiberRef(currentEnabled)) return Effect.void
    let metric = counter
    for (const [key, value] of tags) metric = Metric.tagged(metric, key, value)
    metric.unsafeUpdate(by, [])
    return Effect.void
  })
}

/** What an operation's failure says, for a span attribute: an expected tag, or "failure" / "interrupted". */
const outcomeOf = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (failure._tag === "Some") {
    const tag = (failure.value as { readonly _tag?: unknown })._tag
    return tag === "SessionStoreError" || typeof tag !== "string" ? "failure" : tag
  }
  return Cause.isInterruptedOnly(cause) ? "interrupted" : "defect"
}

/**
 * An operation (or its one backend call), timed: its duration by operation and its failures (`SessionStoreError`:
 * an expected `NotFound` is no failure), with its error mapped by `onError`. It replaces the error mapping a
 * backend call needs anyway, so the metrics cost one `performance.now()` pair.
 */
export const timed = <A, E, E2>(
  operation: StoreOperation,
  effect: Effect.Effect<A, E>,
  onError: (error: E) => E2
): Effect.Effect<A, E2> =>
  Effect.withFiberRuntime((fiber) =>
    fiber.getFiberRef(currentEnabled)
      ? recorded(operation, effect, onError, Effect.succeed)
      : Effect.mapError(effect, onError)
  )

/** `effect` from now to its end: its duration, and its failure if it is one; then `onSuccess` of its value. */
const recorded = <A, E, B, E2, E3>(
  operation: StoreOperation,
  effect: Effect.Effect<A, E>,
  onError: (error: E) => E2,
  onSuccess: (value: A) => Effect.Effect<B, E3>
): Effect.Effect<B, E2 | E3> => {
  const duration = durations.get(operation)!
  const started = performance.now()
  return Effect.matchCauseEffect(effect, {
    onFailure: (cause) => {
      duration((performance.now() - started) / 1000)
      const mapped = Cause.map(cause, onError)
      if (outcomeOf(mapped) === "failure") failures.get(operation)!(1)
      return Effect.failCause(mapped)
    },
    onSuccess: (value) => {
      duration((performance.now() - started) / 1000)
      return onSuccess(value)
    }
  })
}

/**
 * A store operation as a span `effect-session.store.<operation>` (backend, operation, outcome, and what
 * `attributes` adds at the end, such as attempts), when a tracer is installed; otherwise the operation itself.
 */
export const storeSpan = <A, E>(
  backend: string,
  operation: StoreOperation,
  effect: Effect.Effect<A, E>,
  attributes?: () => Record<string, unknown>
): Effect.Effect<A, E> => {
  // One step: the fiber's tracer, read in place (Effect.tracerWith would take two).
  return Effect.withFiberRuntime((fiber) => {
    if (!fiber.getFiberRef(currentEnabled)) return effect
    if (Context.get(fiber.currentDefaultServices, Tracer.Tracer) === builtinTracer) return effect
    const annotate = (outcome: string) =>
      Effect.annotateCurrentSpan({ "session.outcome": outcome, ...(attributes?.() ?? {}) })
    return Effect.withSpan(
      Effect.matchCauseEffect(effect, {
        onFailure: (cause) => Effect.zipRight(annotate(outcomeOf(cause)), Effect.failCause(cause)),
        onSuccess: (value) => Effect.as(annotate("ok"), value)
      }),
      `effect-session.store.${operation}`,
      { kind: "client", attributes: { "session.backend": backend, "session.operation": operation } }
    )
  })
}

/**
 * A store operation made of one backend call: {@link timed} and {@link storeSpan} in one step of the fiber. `then`
 * turns the call's result into the operation's, given the time of the fiber's clock when the result came. Without a
 * tracer (the usual case) the call and its timing take one continuation, which the hottest path (`get`) needs.
 */
export const measuredCall = <A, E, B, E2, E3>(
  backend: string,
  operation: StoreOperation,
  effect: Effect.Effect<A, E>,
  onError: (error: E) => E2,
  then: (value: A, now: number) => Effect.Effect<B, E3>
): Effect.Effect<B, E2 | E3> =>
  Effect.withFiberRuntime((fiber) => {
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const onSuccess = (value: A) => then(value, clock.unsafeCurrentTimeMillis())
    if (!fiber.getFiberRef(currentEnabled)) {
      return Effect.matchEffect(effect, { onFailure: (error) => Effect.fail(onError(error)), onSuccess })
    }
    if (Context.get(fiber.currentDefaultServices, Tracer.Tracer) !== builtinTracer) {
      return storeSpan(backend, operation, Effect.flatMap(timed(operation, effect, onError), onSuccess))
    }
    return recorded(operation, effect, onError, onSuccess)
  })

/** A middleware step (`load`, `save`) as a span, when a tracer is installed; `attributes` are read at its end. */
export const middlewareSpan = <A, E, R>(
  step: "load" | "save",
  effect: Effect.Effect<A, E, R>,
  attributes: (result: A) => Record<string, unknown>
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((fiber) =>
    !fiber.getFiberRef(currentEnabled) || Context.get(fiber.currentDefaultServices, Tracer.Tracer) === builtinTracer
      ? effect
      : Effect.withSpan(
        Effect.tap(effect, (result) => Effect.annotateCurrentSpan(attributes(result))),
        `effect-session.middleware.${step}`
      )
  )
