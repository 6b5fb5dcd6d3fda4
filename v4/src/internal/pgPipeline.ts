/**
 * A few connections in pg's pipeline mode, for the session store's reads.
 *
 * On a pipelined connection concurrent statements go out without waiting for each other's replies, so they share
 * round trips and system calls instead of each taking a pooled connection: on the benchmark machine one such
 * connection serves about 1.8 times the reads of a ten-connection pool. The price is head-of-line blocking: a
 * statement that waits holds up every statement behind it. Reads by key never wait on row locks (MVCC), writes
 * can; so only reads come here, and a read that outlives its deadline destroys its connection (failing the reads
 * behind it at once, which were stuck anyway) and the next read opens a new one.
 */
import { Cause, Effect, type Scope } from "effect"
import Pg from "pg"
import * as Deadline from "./deadline.js"

/** Statements on a few pipelined connections, opened on first use and reopened after a failure. */
export interface Pipeline {
  readonly query: <Row>(
    name: string | undefined,
    text: string,
    values: ReadonlyArray<unknown>,
    timeoutMs: number
  ) => Effect.Effect<ReadonlyArray<Row>, Error>
}

let pipelineSupport: boolean | undefined

/** Whether the installed pg has pipeline mode (8.23 and later): otherwise reads stay on the pool. */
export const supported = (): boolean =>
  pipelineSupport ??= (new Pg.Client({ pipeline: true } as Pg.ClientConfig) as unknown as { pipeline?: boolean })
    .pipeline === true

interface Slot {
  client: Pg.Client | undefined
  connecting: Promise<Pg.Client> | undefined
}

/** Connects a plain `pg.Client` made from `config`. */
const connectClient = async (config: Pg.ClientConfig): Promise<Pg.Client> => {
  const client = new Pg.Client(config)
  try {
    await client.connect()
    return client
  } catch (error) {
    client.end().catch(() => {})
    throw error
  }
}

/**
 * Takes a client out of use and closes its socket at once: in pipeline mode `end()` would wait for the statements
 * on the wire, which is what a stuck connection never finishes. The statements behind the stuck one fail at once
 * (they were stuck too), and the next read opens a new connection.
 */
const retire = (slot: Slot, client: Pg.Client) => {
  if (slot.client === client) slot.client = undefined
  ;(client as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream?.destroy?.()
  client.end().catch(() => {})
}

/**
 * The slot's connection, opened by `open` (once, however many reads wait for it) unless the pipeline is closed.
 */
const connect = (
  config: Pg.ClientConfig,
  open: (config: Pg.ClientConfig) => Promise<Pg.Client>,
  slot: Slot,
  isClosed: () => boolean
): Promise<Pg.Client> => {
  slot.connecting ??= (async () => {
    const client = await open({ ...config, pipeline: true } as Pg.ClientConfig)
    client.on("error", () => retire(slot, client))
    client.on("end", () => {
      if (slot.client === client) slot.client = undefined
    })
    // pg before 8.23 has no pipeline mode and would queue every read behind the previous one: refuse it.
    if ((client as unknown as { pipeline?: boolean }).pipeline !== true) {
      client.end().catch(() => {})
      throw new Error("this version of pg has no pipeline mode (8.23 or later is needed)")
    }
    if (isClosed()) {
      client.end().catch(() => {})
      throw new Error("the pipeline is closed")
    }
    slot.client = client
    return client
  })().finally(() => (slot.connecting = undefined))
  return slot.connecting
}

/**
 * `size` pipelined connections made from `config` and opened by `open` (which may pick a host: see pgTargets),
 * closed with the scope.
 */
export const make = (
  config: Pg.ClientConfig,
  size: number,
  open: (config: Pg.ClientConfig) => Promise<Pg.Client> = connectClient
): Effect.Effect<Pipeline, never, Scope.Scope> =>
  Effect.gen(function*() {
    const slots: Array<Slot> = Array.from({ length: size }, () => ({ client: undefined, connecting: undefined }))
    let next = 0
    let closed = false

    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        closed = true
        await Promise.all(slots.map((slot) => slot.client?.end().catch(() => {})))
      }).pipe(Effect.timeoutOption("2 seconds"))
    )

    const query: Pipeline["query"] = <Row>(
      name: string | undefined,
      text: string,
      values: ReadonlyArray<unknown>,
      timeoutMs: number
    ) =>
      Deadline.callback<ReadonlyArray<Row>, Error>(
        timeoutMs,
        () => new Cause.TimeoutError(`no answer within ${timeoutMs} ms`),
        (settle) => {
          const slot = slots[next++ % size]!
          let ended = false
          let used: Pg.Client | undefined
          const run = (client: Pg.Client) => {
            if (ended) return
            used = client
            const statement = { text, values: values as Array<unknown>, types: Pg.types }
            client.query<any>(name === undefined ? statement : { ...statement, name }, (error, result) =>
              settle(error ? Effect.fail(error) : Effect.succeed(result.rows as ReadonlyArray<Row>)))
          }
          const usable = slot.client
          if (usable !== undefined) run(usable)
          else connect(config, open, slot, () => closed).then(run, (error: Error) => settle(Effect.fail(error)))
          // A deadline retires the connection (the reads behind it were stuck too); an interrupted caller (not a
          // deadline) leaves it to the others: its read completes unheard.
          return (reason) => {
            ended = true
            if (reason === "deadline" && used !== undefined) retire(slot, used)
          }
        }
      )

    return { query }
  })
