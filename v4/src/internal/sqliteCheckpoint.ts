/**
 * WAL checkpoints, off the event loop. A checkpoint copies the WAL into the database file and syncs both to disk:
 * run by the connection that commits, as SQLite does by default every 1000 pages, it stalled the event loop for 7
 * to 116 ms at a time on the test machine. So the store's connection never checkpoints (`wal_autocheckpoint = 0`,
 * set by `sqliteDriver.ts`) and a worker thread with a connection of its own runs a passive checkpoint (it waits
 * for no reader or writer) every `intervalMs`. With `synchronous = NORMAL` commits do not sync either, so the event
 * loop never waits for the disk.
 */
import { Effect, type Scope } from "effect"
import { createRequire } from "node:module"
import { Worker } from "node:worker_threads"

/** The worker: CommonJS run from a string, so that it runs from the sources and from the build alike. */
const source = `
const { parentPort, workerData } = require("node:worker_threads")
const Database = require(workerData.engine)
const db = new Database(workerData.filename, { timeout: 0 })
const checkpoint = () => {
  try { db.pragma("wal_checkpoint(PASSIVE)") } catch {} // another checkpointer holds it: next time
}
const timer = setInterval(checkpoint, workerData.intervalMs)
parentPort.once("message", () => {
  clearInterval(timer)
  db.close()
  parentPort.close()
})
`

/**
 * Starts the thread that checkpoints `filename` every `intervalMs`; it stops with the scope. Should the thread fail
 * (it could not start, or its connection could not open), `fallback` gives the checkpoints back to the store's
 * connection, so that the WAL never grows without end.
 */
export const start = (
  filename: string,
  intervalMs: number,
  fallback: () => void
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.asVoid(Effect.acquireRelease(
    Effect.sync(() => {
      const engine = createRequire(import.meta.url).resolve("better-sqlite3")
      const worker = new Worker(source, { eval: true, workerData: { engine, filename, intervalMs } })
      const state = { worker, stopping: false }
      const lost = () => {
        if (!state.stopping) fallback()
      }
      worker.unref()
      worker.on("error", lost)
      worker.on("exit", lost)
      return state
    }),
    // It closes its connection and exits on its own: nobody waits for it.
    (state) =>
      Effect.sync(() => {
        state.stopping = true
        state.worker.postMessage("stop")
      })
  ))
