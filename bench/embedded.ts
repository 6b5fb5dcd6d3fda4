/**
 * `npm run bench -- embedded`: what `npm start` costs on the embedded engine: time to the first answer and resident
 * memory, cold (no cached empty cluster: PGlite runs initdb) and warm (the cluster the first start cached), each
 * after 50 logins. The demo runs in a child process exactly as `npm start` runs it (tsx), with no DATABASE_URL.
 */
import { spawn } from "node:child_process"
import { readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const root = join(import.meta.dirname, "..")
const port = 3700 + Math.floor(Math.random() * 200)

const residentMiB = (pid: number) => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  return Math.round(Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024)
}

const answers = async (path: string, init?: RequestInit) => {
  try {
    return (await fetch(`http://127.0.0.1:${port}${path}`, { ...init, redirect: "manual" })).status
  } catch {
    return 0
  }
}

/** One start of the demo: milliseconds to the first answer of /healthz, and RSS after 50 logins. */
const start = async () => {
  const started = performance.now()
  const child = spawn(process.execPath, ["--import", "tsx", "examples/demo/main.ts"], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: "", PORT: String(port) },
    stdio: "ignore"
  })
  try {
    for (let i = 0; i < 1200 && (await answers("/healthz")) !== 200; i++) await new Promise((r) => setTimeout(r, 50))
    const firstAnswerMs = Math.round(performance.now() - started)
    for (let i = 0; i < 50; i++) {
      await answers("/login", { method: "POST", body: new URLSearchParams({ name: `user${i}` }) })
    }
    return { firstAnswerMs, rssMiB: residentMiB(child.pid!) }
  } finally {
    child.kill()
    await new Promise((resolve) => child.once("exit", resolve))
  }
}

export const runEmbeddedBench = async () => {
  for (const file of readdirSync(tmpdir()).filter((f) => f.startsWith("effect-session-pglite-"))) {
    rmSync(join(tmpdir(), file), { force: true })
  }
  const cold = await start()
  const warm = await start()
  const result = { cold, warm, targets: { firstAnswerMs: 5_000, rssMiB: 300 } }
  console.log("\n## npm start on the embedded engine")
  console.table({ cold, warm })
  return result
}

if (import.meta.url === `file://${process.argv[1]}`) await runEmbeddedBench()
