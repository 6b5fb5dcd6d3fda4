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
/** An earlier build of the library (a `dist/` directory) to run beside this one: `BENCH_BASELINE=path/to/dist`. */
const BASELINE = process.env.BENCH_BASELINE
type ServerKind =
  | "effect-session"
  | "effect-session-before"
  | "effect-plain"
  | "effect-sql"
  | "effect-sql-ours"
  | "effect-store-get"
  | "express"
  | "fastify"
const SERVERS = (process.env.BENCH_HTTP_SERVERS?.split(",") ?? [
  "effect-session",
  ...(BASELINE ? ["effect-session-before"] : []),
  "effect-plain",
  "effect-sql",
  "effect-sql-ours",
  "effect-store-get",
  "express",
  "fastify"
]) as ReadonlyArray<ServerKind>
const LABEL: Record<ServerKind, string> = {
  "effect-session": "effect-session (SessionMiddleware)",
  "effect-session-before": "effect-session, the baseline build (BENCH_BASELINE)",
  "effect-plain": "same server, no sessions (ceiling)",
  "effect-sql": "same server, one SELECT per request (floor)",
  "effect-sql-ours": "same server, the store's SELECT on the session's row",
  "effect-store-get": "same server, store.get on the owned pool, no middleware",
  express: "express 5 + express-session + connect-pg-simple",
  fastify: "fastify 5 + @fastify/session + connect-pg-simple"
}
/** The servers that have sessions (a /write route and a counter to check). */
const SESSION_SERVERS: ReadonlyArray<ServerKind> = ["effect-session", "effect-session-before", "express", "fastify"]

const start = (kind: ServerKind) =>
  new Promise<{ url: string; child: ChildProcess }>((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "http", "server.ts"), kind], {
      env: kind === "effect-session-before" ? { ...process.env, BENCH_DIST: BASELINE } : process.env,
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

/**
 * `fetch`, tried again (up to 5 times) when the connection fails: a server may close an idle keep-alive connection
 * just as the client reuses it ("other side closed"), which is no failure of the server's.
 */
const fetchRetrying = async (url: string, init: RequestInit = {}, tries = 5): Promise<Response> => {
  try {
    return await fetch(url, init)
  } catch (error) {
    if (tries <= 1) throw error
    await new Promise((resolve) => setTimeout(resolve, 20))
    return fetchRetrying(url, init, tries - 1)
  }
}

/** Logs in `count` times and returns the `Cookie` header of each session. */
const createSessions = async (url: string, count = SESSIONS): Promise<Array<string>> => {
  const cookies: Array<string> = []
  for (let batch = 0; batch < count; batch += 50) {
    const size = Math.min(50, count - batch)
    const replies = await Promise.all(Array.from({ length: size }, () => fetchRetrying(`${url}/login`, { method: "POST" })))
    for (const reply of replies) {
      const cookie = reply.headers.getSetCookie()[0]?.split(";")[0]
      cookies.push(cookie ?? "none=1")
      await reply.text()
    }
  }
  return cookies
}

/** The counter a session's `/read` shows (`user:visits`). */
const visits = async (url: string, cookie: string) =>
  Number((await (await fetchRetrying(`${url}/read`, { headers: { cookie } })).text()).split(":")[1])

interface Result {
  readonly reqPerSec: number
  readonly ok: number
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
    ok: result["2xx"],
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts
  }
}

type Servers = Map<ServerKind, { url: string; child: ChildProcess; cookies: Array<string> }>

/** Each route on each server that has it, in interleaved rounds; the mean of the rounds. */
const routes = async (servers: Servers) => {
  const results: Array<{ route: string; server: ServerKind } & Result> = []
  for (const route of ["/read", "/write"]) {
    // The one-SELECT floors have no writing route.
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
      const sum = (f: (r: Result) => number) => rs.reduce((n, r) => n + f(r), 0)
      results.push({
        route,
        server,
        reqPerSec: mean((r) => r.reqPerSec),
        ok: sum((r) => r.ok),
        p50Ms: mean((r) => r.p50Ms),
        p99Ms: mean((r) => r.p99Ms),
        non2xx: sum((r) => r.non2xx),
        errors: sum((r) => r.errors)
      })
    }
  }
  return results
}

/**
 * A hot session over HTTP: every connection carries the same cookie on `/write` (a counter increment), once per
 * server with sessions. The counter read back afterwards shows how many acknowledged increments were lost.
 */
const hotSession = async (servers: Servers) => {
  const rows: Array<Record<string, string | number>> = []
  for (const kind of SERVERS.filter((k) => SESSION_SERVERS.includes(k))) {
    const { url } = servers.get(kind)!
    const [cookie] = await createSessions(url, 1)
    const before = await visits(url, cookie!)
    const result = await load(url, "/write", [cookie!], SECONDS)
    const after = await visits(url, cookie!)
    rows.push({
      server: LABEL[kind],
      "req/s": Math.round(result.reqPerSec),
      "p50 ms": result.p50Ms,
      "p99 ms": result.p99Ms,
      non2xx: result.non2xx,
      errors: result.errors,
      acknowledged: result.ok,
      lost: Math.max(0, result.ok - (after - before))
    })
  }
  return rows
}

/** Starts every server and creates its sessions (the store's-SELECT diagnostic reads the session server's rows). */
const startAll = async (servers: Servers) => {
  for (const kind of SERVERS) {
    const server = await start(kind)
    servers.set(kind, { ...server, cookies: [] })
    const shared = kind === "effect-sql-ours" ? servers.get("effect-session")?.cookies : undefined
    servers.get(kind)!.cookies = shared ?? await createSessions(server.url)
  }
}

export const runHttpBench = async () => {
  console.log(`\n## HTTP level: ${CONNECTIONS} connections, ${SESSIONS} sessions, ${ROUNDS} interleaved rounds of ${SECONDS}s, ${databaseUrl().replace(/:[^:@/]*@/, ":***@")}\n`)
  const admin = new pg.Client({ connectionString: databaseUrl() })
  await admin.connect()
  await admin.query("DROP TABLE IF EXISTS bench_http_effect, bench_http_cps, bench_http_fastify, bench_http_store")
  await admin.end()
  const servers: Servers = new Map()
  try {
    await startAll(servers)
    const results = await routes(servers)
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
      "ours/fastify": r.server === "effect-session" ? ratio(r.route, "fastify") : "",
      "ours/ceiling": r.server === "effect-session" ? ratio(r.route, "effect-plain") : "",
      "ours/before": r.server === "effect-session" && BASELINE ? ratio(r.route, "effect-session-before") : ""
    }))
    printTable(table)
    console.log(`\nA hot session over HTTP: ${CONNECTIONS} connections on one session's /write for ${SECONDS}s:`)
    const hot = await hotSession(servers)
    printTable(hot)
    return { connections: CONNECTIONS, sessions: SESSIONS, seconds: SECONDS, rounds: ROUNDS, results, table, hot }
  } finally {
    for (const { child } of servers.values()) child.kill("SIGTERM")
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const machine = await describeMachine()
  const http = await runHttpBench()
  console.log(`\nwritten to ${writeResult("http", { machine, ...http })}`)
}
