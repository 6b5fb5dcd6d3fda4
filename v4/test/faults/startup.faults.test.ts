/**
 * Start-up: a server must accept requests only when it can answer them. From the moment the process is spawned,
 * requests hit its port every 25 ms; a refused connection is fine (nothing listens yet), an accepted request that
 * gets no answer within 5 s is the failure this test exists for.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createServer } from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { defaultUrl } from "../support/database.js"
import * as Load from "../support/load.js"

const children: Array<ChildProcess> = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGTERM")
})

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
    })
  })

const startAndProbe = async (script: string, env: Record<string, string>) => {
  const port = await freePort()
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.push(child)
  let output = ""
  child.stdout!.on("data", (chunk) => (output += chunk))
  child.stderr!.on("data", (chunk) => (output += chunk))
  const started = Date.now()
  const outcomes: Array<{ at: number; status: number }> = []
  let answered = 0
  while (answered < 5 && Date.now() - started < 60_000 && child.exitCode === null) {
    const at = Date.now() - started
    const reply = await Load.send(`http://127.0.0.1:${port}/`, { timeoutMs: 5_000 })
    outcomes.push({ at, status: reply.status })
    if (reply.status > 0) answered++
    if (reply.status === -1) await new Promise((r) => setTimeout(r, 25))
  }
  const refused = outcomes.filter((o) => o.status === -1).length
  console.log(`STARTUP ${script}: ${outcomes.length} probes, ${refused} refused before listening, first answer at ${
    outcomes.find((o) => o.status > 0)?.at
  } ms, statuses ${JSON.stringify(Load.statusCounts(outcomes.map((o) => ({ ...o, client: 0, ms: 0 }))))}`)
  return { outcomes, output }
}

describe("start-up", () => {
  it("the demo (npm start) on the embedded engine: every accepted request is answered", async () => {
    const { outcomes, output } = await startAndProbe("examples/demo/main.ts", { DATABASE_URL: "" })
    expect(outcomes.filter((o) => o.status === 0), output).toEqual([])
    expect(outcomes.filter((o) => o.status === 200).length, output).toBe(5)
  })

  it("examples/server.ts on the PostgreSQL server: every accepted request is answered", async () => {
    const { outcomes, output } = await startAndProbe("examples/server.ts", {
      DATABASE_URL: process.env.DATABASE_URL || defaultUrl
    })
    expect(outcomes.filter((o) => o.status === 0), output).toEqual([])
    expect(outcomes.filter((o) => o.status === 200).length, output).toBe(5)
  })
})
