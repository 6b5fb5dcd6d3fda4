/**
 * SQLite test support: one temporary directory per test run (removed when the process exits) with a database file
 * in it, a fresh table name for each store, worker processes running `sqliteWorker.ts` on that file, and a
 * measure of the event loop's lag.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"

const directory = mkdtempSync(join(tmpdir(), "effect-session-sqlite-"))
const children = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL")
  rmSync(directory, { recursive: true, force: true })
})

/** A path in this run's directory. */
export const path = (name: string) => join(directory, name)

/** The database file of this run. */
export const filename = path("sessions.db")

let tables = 0

/** A table name no other store of this run uses. */
export const table = () => `sessions_${++tables}`

/** A job's answer: `event(name)` resolves when the worker reports it, `result` with the job's result. */
export interface Running {
  readonly event: (name: string) => Promise<void>
  readonly result: Promise<any>
}

/** A worker process running `sqliteWorker.ts`; `ready` resolves once it takes jobs. */
export interface Worker {
  readonly ready: Promise<void>
  /** Sends a job on the run's file, to start at the epoch millisecond `at`. */
  readonly run: (job: string, tableName: string, input: unknown, at?: number) => Running
  readonly stop: () => void
}

/** Starts a worker process (stopped by `stop`, or killed when the test process exits). */
export const worker = (): Worker => {
  const child = spawn(process.execPath, ["--import", "tsx", "test/support/sqliteWorker.ts"], {
    stdio: ["pipe", "pipe", "pipe"]
  })
  children.add(child)
  child.once("exit", () => children.delete(child))
  let stderr = ""
  child.stderr!.on("data", (chunk) => (stderr += chunk))
  // A message is kept until someone waits for it, or handed to who already waits.
  const received = new Map<string, any>()
  const listeners = new Map<string, (message: any) => void>()
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) => reject(new Error(`worker exited (${code}): ${stderr}`)))
  )
  exited.catch(() => {}) // rejects only the waits that race it
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const message = JSON.parse(line)
    const name = message.ready ? "ready" : `${message.id}:${message.event ?? "result"}`
    const listener = listeners.get(name)
    if (listener === undefined) received.set(name, message)
    else listener(message)
  })
  const wait = (name: string) =>
    received.has(name)
      ? Promise.resolve(received.get(name))
      : Promise.race([new Promise<any>((resolve) => listeners.set(name, resolve)), exited])
  let jobs = 0
  return {
    ready: wait("ready").then(() => undefined),
    run: (job, tableName, input, at = Date.now()) => {
      const id = ++jobs
      const result = wait(`${id}:result`).then((message) => {
        if (message.error !== undefined) throw new Error(`worker job ${job} failed: ${message.error}`)
        return message.result
      })
      result.catch(() => {}) // a test that never awaits it is not an unhandled rejection
      const event = (name: string) => wait(`${id}:${name}`).then(() => undefined)
      child.stdin!.write(JSON.stringify({ id, job, filename, tableName, at, input }) + "\n")
      return { event, result }
    },
    stop: () => void child.stdin!.end()
  }
}

/**
 * The event loop's lag: how late a timer due every `intervalMs` fires, from now to `stop()`, which returns the
 * worst delay and the 99th percentile (a process that the machine's other work holds off its cores also lags).
 */
export const loopLag = (intervalMs = 5) => {
  const delays: Array<number> = []
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    delays.push(Math.max(0, now - last - intervalMs))
    last = now
  }, intervalMs)
  return {
    stop: () => {
      clearInterval(timer)
      const sorted = [...delays].sort((a, b) => a - b)
      return { worst: sorted.at(-1) ?? 0, p99: sorted[Math.floor(sorted.length * 0.99)] ?? 0, samples: sorted.length }
    }
  }
}
