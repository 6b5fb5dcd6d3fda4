/**
 * The library's spans and metrics. Spans never carry a session key, its hash, or a value; metrics count and time
 * operations, never identify sessions.
 *
 * Spans are created only when a tracer other than Effect's built-in one is installed (an OpenTelemetry exporter, a
 * test tracer): the built-in one records nothing, so without one the hot path pays nothing for them. Metrics are
 * Effect `Metric`s, always on.
 */
import { Cause, Clock, Context, Effect, Metric, Tracer } from "effect"

/** Effect's built-in tracer, the default when no other is installed. */
const builtinTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

/**
 * Whether spans and metrics are recorded, for the fiber that runs an operation (default `true`). The benchmark
 * runs the same code with it off (`Effect.provideService(currentEnabled, false)`) to measure what they cost.
 */
export const currentEnabled: Context.Reference<boolean> = Context.Reference<boolean>(
  "effect-session/Observability/currentEnabled",
  { defaultValue: () => true }
)

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
 * A metric's update for one operation: a metric of its own per operation (same name, its `operation` attribute),
 * made once. Effect caches a series key per metric, so one metric per label set finds its series at once, whereas
 * `Metric.withAttributes` over a shared metric recomputes the key whenever the operation changes (8× the cost).
 */
const byOperation = (make: (attributes: { readonly operation: string }) => Metric.Metric<number, unknown>) =>
  new Map(storeOperations.map((operation) => {
    const metric = make({ operation })
    return [operation, (value: number, context: Context.Context<never>) => metric.updateUnsafe(value, context)] as const
  }))

/** A counter that only ever grows (exported as a total). */
const total = (name: string, description: string, attributes?: Metric.Metric.AttributeSet) =>
  Metric.counter(name, { description, incremental: true, attributes })

/** Duration of store operations, by operation. */
const durationHistogram = (attributes?: Metric.Metric.AttributeSet) =>
  Metric.histogram("effect_session_store_operation_seconds", {
    boundaries: Metric.exponentialBoundaries({ start: 0.0001, factor: 2, count: 16 }),
    description: "Duration of session store operations",
    attributes
  })
export const operationDuration = durationHistogram()
const durations = byOperation(durationHistogram)

/** Store operations that failed (the backend failed or did not answer in time), by operation. */
export const operationFailures = total(
  "effect_session_store_failures_total",
  "Session store operations that failed with SessionStoreError"
)
const failures = byOperation((attributes) => total(operationFailures.id, operationFailures.description!, attributes))

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
  counter: Metric.Counter<number>,
  by = 1,
  ...tags: ReadonlyArray<readonly [string, string]>
): Effect.Effect<void> => {
  if (by === 0) return Effect.void
  return Effect.withFiber((fiber) => {
    if (!fiber.getRef(currentEnabled)) return Effect.void
    let metric = counter
    for (const [key, value] of tags) metric = Metric.withAttributes(metric, { [key]: value })
    metric.updateUnsafe(by, fiber.context)
    return Effect.void
  })
}

/** What an operation's failure says, for a span attribute: an expected tag, or "failure" / "interrupted". */
const outcomeOf = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.findErrorOption(cause)
  if (failure._tag === "Some") {
    const tag = (failure.value as { readonly _tag?: unknown })._tag
    return tag === "SessionStoreError" || typeof tag !== "string" ? "failure" : tag
  }
  return Cause.hasInterruptsOnly(cause) ? "interrupted" : "defect"
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
  Effect.withFiber((fiber) =>
    fiber.getRef(currentEnabled)
      ? recorded(operation, effect, onError, Effect.succeed, fiber.context)
      : Effect.mapError(effect, onError)
  )

/** `effect` from now to its end: its duration, and its failure if it is one; then `onSuccess` of its value. */
const recorded = <A, E, B, E2, E3>(
  operation: StoreOperation,
  effect: Effect.Effect<A, E>,
  onError: (error: E) => E2,
  onSuccess: (value: A) => Effect.Effect<B, E3>,
  context: Context.Context<never>
): Effect.Effect<B, E2 | E3> => {
  const duration = durations.get(operation)!
  const started = performance.now()
  return Effect.matchCauseEffect(effect, {
    onFailure: (cause) => {
      duration((performance.now() - started) / 1000, context)
      const mapped = Cause.map(cause, onError)
      if (outcomeOf(mapped) === "failure") failures.get(operation)!(1, context)
      return Effect.failCause(mapped)
    },
    onSuccess: (value) => {
      duration((performance.now() - started) / 1000, context)
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
  return Effect.withFiber((fiber) => {
    if (!fiber.getRef(currentEnabled)) return effect
    if (fiber.getRef(Tracer.Tracer) === builtinTracer) return effect
    const annotate = (outcome: string) =>
      Effect.annotateCurrentSpan({ "session.outcome": outcome, ...(attributes?.() ?? {}) })
    return Effect.withSpan(
      Effect.matchCauseEffect(effect, {
        onFailure: (cause) => Effect.andThen(annotate(outcomeOf(cause)), Effect.failCause(cause)),
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
  Effect.withFiber((fiber) => {
    const clock = fiber.getRef(Clock.Clock)
    const onSuccess = (value: A) => then(value, clock.currentTimeMillisUnsafe())
    if (!fiber.getRef(currentEnabled)) {
      return Effect.matchEffect(effect, { onFailure: (error) => Effect.fail(onError(error)), onSuccess })
    }
    if (fiber.getRef(Tracer.Tracer) !== builtinTracer) {
      return storeSpan(backend, operation, Effect.flatMap(timed(operation, effect, onError), onSuccess))
    }
    return recorded(operation, effect, onError, onSuccess, fiber.context)
  })

/** A middleware step (`load`, `save`) as a span, when a tracer is installed; `attributes` are read at its end. */
export const middlewareSpan = <A, E, R>(
  step: "load" | "save",
  effect: Effect.Effect<A, E, R>,
  attributes: (result: A) => Record<string, unknown>
): Effect.Effect<A, E, R> =>
  Effect.withFiber((fiber) =>
    !fiber.getRef(currentEnabled) || fiber.getRef(Tracer.Tracer) === builtinTracer
      ? effect
      : Effect.withSpan(
        Effect.tap(effect, (result) => Effect.annotateCurrentSpan(attributes(result))),
        `effect-session.middleware.${step}`
      )
  )
