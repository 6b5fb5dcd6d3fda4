/**
 * Batching across sessions: the statements of concurrent callers, each about a different session, sent as one.
 *
 * A lane (one per kind of statement: reads, compare-and-sets) lets at most `maxInFlight` of its statements run at
 * once. A caller that finds a free slot and nobody waiting sends its own statement at once, exactly as without
 * batching: at low load nothing waits, and there is no timer. A caller that finds every slot taken waits; when a
 * statement returns, everything that waited meanwhile (at most `maxBatch`, never two with the same key) goes out as
 * one statement, whose rows come back with their ids and are handed to their callers.
 *
 * Each caller keeps its own deadline. A caller whose deadline passes while it waits leaves the lane and is never
 * sent; one whose deadline passes while its statement runs fails on time, and the statement carries on for the
 * others (its row may then be written, acknowledged to nobody: as for any statement past its deadline). When every
 * caller of a running statement has left, the statement is interrupted, which discards its connection as a single
 * statement's deadline does. An input the statement of many could not serve without waiting ({@link busy}: a row
 * locked by another transaction) runs alone afterwards, outside the lane's slots; and a statement of many that fails
 * with a server error (deadlock detected, say) was rolled back whole: its inputs then run one by one, so one row
 * never fails the others.
 */
import { Cause, type Context, Effect, Exit, type Fiber, Metric } from "effect"
import * as Deadline from "./deadline.js"

/**
 * Inputs per statement of the owned pool's lanes (`kind`: `read` or `write`): a batch of one is a caller that sent
 * its statement alone.
 */
export const batchSize = Metric.histogram("effect_session_pg_batch_size", {
  boundaries: Metric.boundariesFromIterable([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128]),
  description: "Sessions per statement sent by the PostgreSQL store's batching (owned pool)"
})

/** Inputs run alone after a statement of many: it skipped them (busy) or failed with a server error. */
export const ranAlone = Metric.counter("effect_session_pg_batch_ran_alone_total", {
  description: "Inputs of the PostgreSQL store's batches run alone afterwards (a locked row, or a rolled-back batch)",
  incremental: true
})

/** What a statement of many answers for an input it skipped: run it alone. */
export const busy: unique symbol = Symbol.for("effect-session/PgBatch/busy")

/** How a lane runs its statements. */
export interface Options<I, O> {
  /** The `kind` label of {@link batchSize}. */
  readonly kind: string
  /** Statements of this lane running at once, at most; what arrives meanwhile waits and goes out together. */
  readonly maxInFlight: number
  /** Inputs per statement, at most. */
  readonly maxBatch: number
  /** Each caller's deadline, in milliseconds. */
  readonly timeout: number
  /** Inputs with the same key never share a statement (two writes of one row). */
  readonly key?: ((input: I) => string) | undefined
  /** The statement of one input, within `timeoutMs`. */
  readonly one: (input: I, timeoutMs: number) => Effect.Effect<O, unknown>
  /** The statement of many inputs, within `timeoutMs`: one outcome per input, in their order, or {@link busy}. */
  readonly many: (inputs: ReadonlyArray<I>, timeoutMs: number) => Effect.Effect<ReadonlyArray<O | typeof busy>, unknown>
  /** Whether a failed `many` changed nothing (a server error rolls its statement back): its inputs then run alone. */
  readonly rolledBack: (error: unknown) => boolean
}

/** A lane: `submit` runs an input's statement, alone or with others. */
export interface Lane<I, O> {
  readonly submit: (input: I) => Effect.Effect<O, unknown>
}

/** A running statement: how many of its callers still wait for it, and its fiber. */
interface Running {
  listening: number
  fiber: Fiber.Fiber<unknown, unknown> | undefined
}

interface Entry<I, O> {
  readonly input: I
  /** When its caller stops waiting (`performance.now()` time). */
  readonly deadline: number
  readonly settle: (result: Effect.Effect<O, unknown>) => void
  gone: boolean
  running: Running | undefined
}

/** The placeholder failure of a skipped input whose caller left (never seen by anyone). */
const skipped = new Error("skipped by its batch; its caller left")

const timedOut = (millis: number) => () => new Cause.TimeoutError(`no answer within ${millis} ms`)

/** A server's error (it has an SQLSTATE): the statement was rolled back; a lost connection says nothing of that. */
export const isServerError = (error: unknown): boolean =>
  typeof (error as { code?: unknown } | null)?.code === "string" &&
  /^[0-9A-Z]{5}$/.test((error as { code: string }).code)

/** A lane's state: the callers waiting, its statements in flight. */
class LaneState<I, O> implements Lane<I, O> {
  private readonly batchSize: Metric.Histogram<number>
  private readonly ranAlone: Metric.Counter<number>
  private readonly fork: ReturnType<typeof Effect.runForkWith<never>>
  private readonly waiting: Array<Entry<I, O>> = []
  private inFlight = 0

  constructor(private readonly options: Options<I, O>, private readonly context: Context.Context<never>) {
    this.batchSize = Metric.withAttributes(batchSize, { kind: options.kind })
    this.ranAlone = Metric.withAttributes(ranAlone, { kind: options.kind })
    this.fork = Effect.runForkWith(context)
  }

  readonly submit = (input: I): Effect.Effect<O, unknown> =>
    Effect.suspend(() => {
      if (this.inFlight >= this.options.maxInFlight || this.waiting.length > 0) return this.wait(input)
      // A free slot and nobody waiting: this caller's own statement, at once, in its own fiber.
      this.inFlight++
      this.batchSize.updateUnsafe(1, this.context)
      return Effect.ensuring(this.options.one(input, this.options.timeout), Effect.sync(this.done))
    })

  /** Waits (within the caller's deadline) for a batch to carry `input`. */
  private wait(input: I) {
    const { timeout } = this.options
    return Deadline.callback<O, unknown>(timeout, timedOut(timeout), (settle) => {
      const entry: Entry<I, O> = { input, deadline: performance.now() + timeout, settle, gone: false, running: undefined }
      this.waiting.push(entry)
      this.flush()
      return () => this.leave(entry)
    })
  }

  /** A caller that stopped waiting; the last caller of a running statement interrupts it. */
  private leave(entry: Entry<I, O>) {
    entry.gone = true
    const running = entry.running
    if (running !== undefined && --running.listening === 0) running.fiber?.interruptUnsafe()
  }

  private readonly done = () => {
    this.inFlight--
    this.flush()
  }

  private flush() {
    while (this.inFlight < this.options.maxInFlight && this.waiting.length > 0) {
      const entries = this.take()
      if (entries.length > 0) this.send(entries)
    }
  }

  /** Takes the next batch from the waiting callers: in order, at most `maxBatch`, one per key. */
  private take(): Array<Entry<I, O>> {
    const { key, maxBatch } = this.options
    const batch: Array<Entry<I, O>> = []
    const later: Array<Entry<I, O>> = []
    const keys = new Set<string>()
    let i = 0
    for (; i < this.waiting.length && batch.length < maxBatch; i++) {
      const entry = this.waiting[i]!
      if (entry.gone) continue
      const k = key?.(entry.input)
      if (k !== undefined && keys.has(k)) later.push(entry)
      else {
        if (k !== undefined) keys.add(k)
        batch.push(entry)
      }
    }
    this.waiting.splice(0, i, ...later)
    return batch
  }

  /** Sends `entries` as one statement, in a fiber of its own; its slot is given back once (`release`). */
  private send(entries: ReadonlyArray<Entry<I, O>>) {
    this.inFlight++
    this.batchSize.updateUnsafe(entries.length, this.context)
    const running: Running = { listening: entries.length, fiber: undefined }
    let latest = 0
    for (const entry of entries) {
      entry.running = running
      latest = Math.max(latest, entry.deadline)
    }
    let released = false
    const release = () => {
      if (released) return
      released = true
      this.done()
    }
    const timeoutMs = Math.max(1, Math.ceil(latest - performance.now()))
    running.fiber = this.fork(
      this.outcomes(entries, timeoutMs, release).pipe(
        Effect.tap((exits) => Effect.sync(() => entries.forEach((entry, i) => entry.gone || entry.settle(exits[i]!)))),
        Effect.ensuring(Effect.sync(release))
      )
    )
  }

  /**
   * Each entry's outcome: the batch's statement; then, with the lane's slot given back (`release`), the inputs it
   * skipped, or all of them when it was rolled back, alone.
   */
  private outcomes(entries: ReadonlyArray<Entry<I, O>>, timeoutMs: number, release: () => void) {
    const { many, one, rolledBack } = this.options
    if (entries.length === 1) return Effect.map(Effect.exit(one(entries[0]!.input, timeoutMs)), (exit) => [exit])
    return Effect.matchEffect(many(entries.map((entry) => entry.input), timeoutMs), {
      onSuccess: (outs) => {
        release()
        // Plain answers settle as they are; only the skipped (busy) inputs need statements, and fibers, of their own.
        const exits = outs.map((out): Exit.Exit<O, unknown> | undefined => out === busy ? undefined : Exit.succeed(out))
        const skippedAt = exits.flatMap((exit, i) => exit === undefined ? [i] : [])
        if (skippedAt.length === 0) return Effect.succeed(exits as Array<Exit.Exit<O, unknown>>)
        return Effect.map(
          Effect.forEach(skippedAt, (i) => this.alone(entries[i]!, skipped), { concurrency: "unbounded" }),
          (alone) => exits.map((exit, i) => exit ?? alone[skippedAt.indexOf(i)]!)
        )
      },
      onFailure: (error) => {
        release()
        return rolledBack(error)
          ? Effect.forEach(entries, (entry) => this.alone(entry, error), { concurrency: "unbounded" })
          : Effect.succeed(entries.map(() => Exit.fail(error)))
      }
    })
  }

  /** `entry` run alone, within what is left of its deadline (a failure placeholder when its caller left). */
  private alone(entry: Entry<I, O>, error: unknown): Effect.Effect<Exit.Exit<O, unknown>> {
    if (entry.gone) return Effect.succeed(Exit.fail(error))
    this.ranAlone.updateUnsafe(1, this.context)
    return Effect.exit(this.options.one(entry.input, Math.max(1, Math.ceil(entry.deadline - performance.now()))))
  }
}

/** A lane of `options`, its batches run as fibers with the services of `context`. */
export const make = <I, O>(options: Options<I, O>, context: Context.Context<never>): Lane<I, O> =>
  new LaneState(options, context)
