/**
 * HTTP level: each server in its own process, autocannon from this one. 32 connections; 1000 sessions are created
 * first and each request carries one of their cookies, chosen at random. A read-only route and a writing route.
 *
 *   npx tsx bench/http.ts        (BENCH_HTTP_SECONDS per run, default 5; BENCH_ROUNDS, default 2)
 */
import autocannon from "autocannon"
import { type ChildProcess, spawn } from "node:child_process"
import { join } from "node:path"
import pg from "pg"
import { databaseUrl, describeMachine, printTable, writeResult } from "./lib/machine.js"

const SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 5)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2)
const SESSIONS = 1000
const CONNECTIONS = 32
const SERVERS = (process.env.BENCH_HTTP_SERVERS?.split(",") ?? ["effect-session", "effect-plain", "effect-sql", "effect-sql-ours", "effect-store-get", "express"]) as ReadonlyArray<ServerKind>
type ServerKind = "effect-session" | "effect-plain" | "effect-sql" | "effect-sql-ours" | "effect-store-get" | "express"
const LABEL: Record<ServerKind, string> = {
  "effect-session": "effect-session (SessionMiddleware)",
  "effect-plain": "same server, no sessions (ceiling)",
  "effect-sql": "same server, one SELECT per request (floor)",
  "effect-sql-ours": "same server, the store's SELECT on the session's row",
  "effect-store-get": "same server, store.get on the owned pool, no middleware",
  express: "express 5 + express-session + connect-pg-simple"
}

const start = (kind: ServerKind) =>
  new Promise<{ url: string; child: ChildProcess }>((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "http", "server.ts"), kind], {
      env: process.env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const match = /listening on (http:\/\/\S+)/.exec(output)
      if (match) resolve({ url: match[1]!, child })
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    child.once("exit", (code) => reject(new Error(`${kind} exited with ${code}:\n${output}`)))
  })

/** Logs in SESSIONS times and returns the `Cookie` header of each session. */
const createSessions = async (url: string): Promise<Array<string>> => {
  const cookies: Array<string> = []
  for (let batch = 0; batch < SESSIONS; batch += 50) {
    const replies = await Promise.all(Array.from({ length: 50 }, () => fetch(`${url}/login`, { method: "POST" })))
    for (const reply of replies) {
      const cookie = reply.headers.getSetCookie()[0]?.split(";")[0]
      cookies.push(cookie ?? "none=1")
      await reply.text()
    }
  }
  return cookies
}

interface Result {
  readonly reqPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly non2xx: number
  readonly errors: number
}

const load = async (url: string, path: string, cookies: Array<string>, seconds: number): Promise<Result> => {
  const result = await autocannon({
    url: `${url}${path}`,
    connections: CONNECTIONS,
    duration: seconds,
    requests: [{
      setupRequest: (request: any) => {
        request.headers = { ...request.headers, cookie: cookies[Math.floor(Math.random() * cookies.length)] }
        return request
      }
    }]
  })
  return {
    reqPerSec: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts
  }
}

export const runHttpBench = async () => {
  console.log(`\n## HTTP level: ${CONNECTIONS} connections, ${SESSIONS} sessions, ${ROUNDS} interleaved rounds of ${SECONDS}s, ${databaseUrl().replace(/:[^:@/]*@/, ":***@")}\n`)
  const admin = new pg.Client({ connectionString: databaseUrl() })
  await admin.connect()
  await admin.query("DROP TABLE IF EXISTS bench_http_effect, bench_http_cps")
  await admin.end()
  const servers = new Map<ServerKind, { url: string; child: ChildProcess; cookies: Array<string> }>()
  try {
    for (const kind of SERVERS) {
      const server = await start(kind)
      // The store's-SELECT diagnostic reads the rows the session server created.
      const shared = kind === "effect-sql-ours" ? servers.get("effect-session")?.cookies : undefined
      servers.set(kind, { ...server, cookies: shared ?? await createSessions(server.url) })
    }
    const results: Array<{ route: string; server: ServerKind } & Result> = []
    for (const route of ["/read", "/write"]) {
      // The one-SELECT floor has no writing route.
      const kinds = SERVERS.filter((k) => route === "/read" || !(k.startsWith("effect-sql") || k === "effect-store-get"))
      const runs = new Map<ServerKind, Array<Result>>(kinds.map((k) => [k, []]))
      for (let round = 0; round < ROUNDS; round++) {
        for (const kind of round % 2 === 0 ? kinds : [...kinds].reverse()) {
          const { cookies, url } = servers.get(kind)!
          await load(url, route, cookies, 1) // warm-up
          runs.get(kind)!.push(await load(url, route, cookies, SECONDS))
        }
      }
      for (const [server, rs] of runs) {
        const mean = (f: (r: Result) => number) => rs.reduce((n, r) => n + f(r), 0) / rs.length
        results.push({
          route,
          server,
          reqPerSec: mean((r) => r.reqPerSec),
          p50Ms: mean((r) => r.p50Ms),
          p99Ms: mean((r) => r.p99Ms),
          non2xx: rs.reduce((n, r) => n + r.non2xx, 0),
          errors: rs.reduce((n, r) => n + r.errors, 0)
        })
      }
    }
    const rate = (route: string, server: ServerKind) =>
      results.find((r) => r.route === route && r.server === server)?.reqPerSec ?? NaN
    const ratio = (route: string, other: ServerKind) => {
      const value = rate(route, "effect-session") / rate(route, other)
      return Number.isFinite(value) ? value : ""
    }
    const table = results.map((r) => ({
      route: r.route,
      server: LABEL[r.server],
      "req/s": Math.round(r.reqPerSec),
      "p50 ms": r.p50Ms,
      "p99 ms": r.p99Ms,
      non2xx: r.non2xx,
      errors: r.errors,
      "ours/express": r.server === "effect-session" ? ratio(r.route, "express") : "",
      "ours/ceiling": r.server === "effect-session" ? ratio(r.route, "effect-plain") : ""
    }))
    printTable(table)
    return { connections: CONNECTIONS, sessions: SESSIONS, seconds: SECONDS, rounds: ROUNDS, results, table }
  } finally {
    for (const { child } of servers.values()) child.kill("SIGTERM")
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const machine = await describeMachine()
  const http = await runHttpBench()
  console.log(`\nwritten to ${writeResult("http", { machine, ...http })}`)
}
