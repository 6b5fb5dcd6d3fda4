/**
 * `npm run bench -- lines`: the Effect 3 line (dist/, the root's node_modules) and the Effect 4 line (v4/dist,
 * v4/node_modules) side by side in one run, and the ratio v4 / v3 per row. Every competitor runs in a process of its
 * own under the same Node 22 (the Effect 4 line needs ≥ 22.19; `.ci/node22.sh` finds or fetches it when this runs
 * under another Node), each loading its own `effect`: the Effect 3 workloads are bench/lines/storeWorker.ts and
 * bench/http/server.ts ("effect-session"), their Effect 4 twins v4/bench/storeWorker.ts and v4/bench/server.ts.
 *
 * Store rows: get (hit) and set at concurrency 1 and 16, modify at 16, on the owned pool (`PgSessionStore.layerPool`,
 * pool of 10), a table of BENCH_ROWS live sessions per line (dropped afterwards). HTTP rows: /read and /write, 32
 * connections, 1000 sessions per server, autocannon from this process. BENCH_ROUNDS (3) interleaved rounds of
 * BENCH_SECONDS (2) per row (v3 v4, v4 v3, v3 v4, …); ops/s is the median of the rounds, latencies pooled (store) or
 * the mean of the rounds' percentiles (HTTP). Then every row below 0.9× (BENCH_LINES_PROFILE=all: every row; =off:
 * none) is profiled on both lines (V8's CPU profiler over the load only) and the self time per request of each
 * part (Effect's runtime, its HTTP stack, the library, pg, Node) and the frames that differ most are printed.
 * The profiles stay in bench/results/profiles/ (ignored by git).
 *
 * Needs v4/dist: `export PATH="$(bash .ci/node22.sh):$PATH" && (cd v4 && npm ci && npm run build)`.
 *   npx tsx bench/lines.ts        (BENCH_SECONDS, BENCH_ROUNDS (at least 3), BENCH_ROWS, BENCH_LINES_PARTS=store,http,
 *                                  BENCH_LINES_ROUTES=/read,/write, BENCH_LINES_PROFILE=auto|all|off)
 */
import autocannon from "autocannon"
import { execFileSync, spawn } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from "node:fs"
import { basename, join, resolve } from "node:path"
import pg from "pg"
import { databaseUrl, describeMachine, printTable, writeResult } from "./lib/machine.js"
import { type Stats, summarize } from "./lib/measure.js"

const ROOT = resolve(import.meta.dirname, "..")
const V4 = join(ROOT, "v4")
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2)
const ROUNDS = Math.max(3, Number(process.env.BENCH_ROUNDS ?? 3))
const ROWS = Number(process.env.BENCH_ROWS ?? 100_000)
const SESSIONS = 1000
const CONNECTIONS = 32
const THRESHOLD = 0.9
const PARTS = (process.env.BENCH_LINES_PARTS ?? "store,http").split(",")
const ROUTES = (process.env.BENCH_LINES_ROUTES ?? "/read,/write").split(",")
const PROFILE = process.env.BENCH_LINES_PROFILE ?? "auto"
const PROFILE_SECONDS = Math.max(4, 2 * SECONDS)
const PROFILE_DIR = join(import.meta.dirname, "results", "profiles")

/** How to build the Effect 4 line, from the repository root. */
export const BUILD_V4 = `export PATH="$(bash .ci/node22.sh):$PATH" && (cd v4 && npm ci && npm run build)`

/** Whether v4/dist and v4/node_modules are there. */
export const v4Built = () => existsSync(join(V4, "dist", "index.js")) && existsSync(join(V4, "node_modules", "effect"))

/** The files under `dir` changed after `time` (ms). */
const changedAfter = (dir: string, time: number): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    return entry.isDirectory() ? changedAfter(path, time) : statSync(path).mtimeMs > time ? [path.slice(ROOT.length + 1)] : []
  })

type Line = "v3" | "v4"
const LINES: ReadonlyArray<Line> = ["v3", "v4"]

/** The Node every competitor runs under: this one if it is 22.19 or later on 22, else `.ci/node22.sh`'s. */
const node22 = () => {
  const [major, minor] = process.versions.node.split(".").map(Number)
  if (major === 22 && minor! >= 19) return process.execPath
  return join(execFileSync("bash", [join(ROOT, ".ci", "node22.sh")], { encoding: "utf8" }).trim(), "node")
}

/** A process under `node` with tsx (resolved from the root), its output kept (the last 20k characters). */
const launch = (node: string, args: ReadonlyArray<string>, ipc: boolean, env: Record<string, string> = {}) => {
  const child = spawn(node, ["--import", "tsx", "--import", join(import.meta.dirname, "lines", "profileOnSignal.ts"), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ipc ? ["ignore", "pipe", "pipe", "ipc"] : ["ignore", "pipe", "pipe"],
    serialization: "advanced"
  })
  const state = { output: "", waiters: [] as Array<{ pattern: RegExp; resolve: (m: RegExpExecArray) => void }> }
  const onData = (chunk: Buffer) => {
    state.output = (state.output + chunk.toString()).slice(-20_000)
    state.waiters = state.waiters.filter((w) => {
      const match = w.pattern.exec(state.output)
      if (match) w.resolve(match)
      return !match
    })
  }
  child.stdout!.on("data", onData)
  child.stderr!.on("data", onData)
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code, signal) => reject(new Error(`${args.join(" ")} exited (${code ?? signal}):\n${state.output}`)))
  )
  exited.catch(() => {})
  /** Waits for `pattern` in the output written after this call. */
  const waitFor = (pattern: RegExp) => {
    state.output = ""
    return Promise.race([new Promise<RegExpExecArray>((resolve) => state.waiters.push({ pattern, resolve })), exited])
  }
  return { child, waitFor, exited }
}

// ---------- store workers ----------
type Op = "get (hit)" | "set" | "modify"
const STORE_ROWS: ReadonlyArray<readonly [Op, number]> = [["get (hit)", 1], ["set", 1], ["get (hit)", 16], ["set", 16], ["modify", 16]]
const TABLE: Record<Line, string> = { v3: "bench_lines_store_v3", v4: "bench_lines_store_v4" }
const WORKER: Record<Line, string> = {
  v3: join(import.meta.dirname, "lines", "storeWorker.ts"),
  v4: join(V4, "bench", "storeWorker.ts")
}

const startWorker = async (node: string, line: Line) => {
  const { child, exited } = launch(node, [WORKER[line], TABLE[line]], true)
  const pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>()
  let next = 0
  let ready!: (version: string) => void
  const isReady = new Promise<string>((resolve) => (ready = resolve))
  child.on("message", (message: any) => {
    if ("ready" in message) return ready(message.ready)
    const waiter = pending.get(message.id)!
    pending.delete(message.id)
    if (message.ok) waiter.resolve(message.result)
    else waiter.reject(new Error(`${line} worker: ${message.error}`))
  })
  const version = await Promise.race([isReady, exited])
  const call = <A>(command: Record<string, unknown>): Promise<A> =>
    Promise.race([
      new Promise<A>((resolve, reject) => {
        const id = next++
        pending.set(id, { resolve, reject })
        child.send({ ...command, id })
      }),
      exited
    ])
  return { line, child, version, call, exited }
}
type Worker = Awaited<ReturnType<typeof startWorker>>

/** Runs `run` for each line in interleaved rounds: v3 v4, v4 v3, v3 v4, … */
const interleave = async <A>(run: (line: Line) => Promise<A>) => {
  const runs: Record<Line, Array<A>> = { v3: [], v4: [] }
  for (let round = 0; round < ROUNDS; round++) {
    for (const line of round % 2 === 0 ? LINES : [...LINES].reverse()) runs[line].push(await run(line))
  }
  return runs
}

interface Side {
  readonly rate: number
  readonly rounds: ReadonlyArray<number>
  readonly p50Ms: number
  readonly p99Ms: number
  readonly errors: number
  /** Store rows: sessions per statement on the owned pool's lane (warm-ups included). */
  readonly batch?: number
}
interface Row {
  readonly part: "store" | "http"
  readonly row: string
  readonly conc: string
  readonly v3: Side
  readonly v4: Side
  readonly ratio: number
  readonly roundRatios: ReadonlyArray<number>
  /** What reruns the row's load on one line (for the profile). */
  readonly key: { readonly op: string; readonly concurrency: number }
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const row = (part: Row["part"], name: string, conc: string, key: Row["key"], v3: Side, v4: Side): Row => ({
  part,
  row: name,
  conc,
  v3,
  v4,
  ratio: v4.rate / v3.rate,
  roundRatios: v3.rounds.map((r, i) => v4.rounds[i]! / r),
  key
})

const storeRows = async (workers: Record<Line, Worker>) => {
  const rows: Array<Row> = []
  for (const [op, concurrency] of STORE_ROWS) {
    type Run = Stats & { readonly statements: number; readonly batched: number }
    const runs = await interleave((line) => workers[line].call<Run>({ cmd: "run", op, concurrency, seconds: SECONDS }))
    const side = (stats: Array<Run>): Side => {
      const pooled = summarize(stats.flatMap((s) => s.latencies ?? []), 1000, 0)
      return {
        rate: median(stats.map((s) => s.opsPerSec)),
        rounds: stats.map((s) => s.opsPerSec),
        p50Ms: pooled.p50Ms,
        p99Ms: pooled.p99Ms,
        errors: stats.reduce((n, s) => n + s.errors, 0),
        batch: stats.reduce((n, s) => n + s.batched, 0) / stats.reduce((n, s) => n + s.statements, 0)
      }
    }
    rows.push(row("store", `store ${op}`, String(concurrency), { op, concurrency }, side(runs.v3), side(runs.v4)))
    console.log(`  ${rows.at(-1)!.row} c${concurrency}: v4/v3 ${rows.at(-1)!.ratio.toFixed(2)}`)
  }
  return rows
}

// ---------- HTTP ----------
const HTTP_TABLE: Record<Line, string> = { v3: "bench_http_effect", v4: "bench_lines_http_v4" }
const SERVER: Record<Line, ReadonlyArray<string>> = {
  v3: [join(import.meta.dirname, "http", "server.ts"), "effect-session"],
  v4: [join(V4, "bench", "server.ts"), HTTP_TABLE.v4]
}

/** Where a server writes its profile (see profileOnSignal.ts); moved to the row's name afterwards. */
const serverProfile = (line: Line) => join(PROFILE_DIR, `lines-server-${line}.cpuprofile`)

const startServer = async (node: string, line: Line) => {
  const server = launch(node, SERVER[line], false, { LINES_PROFILE_FILE: serverProfile(line) })
  const url = (await server.waitFor(/listening on (http:\/\/\S+)/))[1]!
  const cookies = await createSessions(url)
  // Each cookie names a stored session: /read answers with its data ("bench:0") and no new cookie.
  const reply = await fetchRetrying(`${url}/read`, { headers: { cookie: cookies[0]! } })
  const body = await reply.text()
  if (reply.status !== 200 || body !== "bench:0" || reply.headers.getSetCookie().length > 0) {
    throw new Error(`the ${line} server's /read did not read the session: ${reply.status} "${body}" ${reply.headers.getSetCookie()}`)
  }
  return { ...server, url, cookies }
}
type HttpServer = Awaited<ReturnType<typeof startServer>>

/** `fetch`, tried again (up to 5 times) when a keep-alive connection was closed under it (as bench/http.ts). */
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
    const replies = await Promise.all(Array.from({ length: Math.min(50, count - batch) }, () => fetchRetrying(`${url}/login`, { method: "POST" })))
    for (const reply of replies) {
      cookies.push(reply.headers.getSetCookie()[0]?.split(";")[0] ?? "none=1")
      await reply.text()
    }
  }
  return cookies
}

const load = async (url: string, path: string, cookies: Array<string>, seconds: number) => {
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
    errors: result.non2xx + result.errors + result.timeouts
  }
}

const httpRows = async (servers: Record<Line, HttpServer>) => {
  const rows: Array<Row> = []
  for (const route of ROUTES) {
    const runs = await interleave(async (line) => {
      const { cookies, url } = servers[line]
      await load(url, route, cookies, 1) // warm-up, as bench/http.ts
      return load(url, route, cookies, SECONDS)
    })
    const side = (rs: Array<Awaited<ReturnType<typeof load>>>): Side => ({
      rate: median(rs.map((r) => r.reqPerSec)),
      rounds: rs.map((r) => r.reqPerSec),
      p50Ms: rs.reduce((n, r) => n + r.p50Ms, 0) / rs.length,
      p99Ms: rs.reduce((n, r) => n + r.p99Ms, 0) / rs.length,
      errors: rs.reduce((n, r) => n + r.errors, 0)
    })
    rows.push(row("http", `HTTP ${route}`, `${CONNECTIONS} conn.`, { op: route, concurrency: CONNECTIONS }, side(runs.v3), side(runs.v4)))
    console.log(`  ${rows.at(-1)!.row}: v4/v3 ${rows.at(-1)!.ratio.toFixed(2)}`)
  }
  return rows
}

// ---------- profiles ----------
interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
}
interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly endTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

/** Where a frame comes from, named alike on both lines (Effect 3's `@effect/platform` is Effect 4's `effect/http`). */
const place = (url: string, functionName: string) => {
  // A socket write (to PostgreSQL, or the HTTP reply): its time is the kernel's, and on a loaded machine the wait for
  // the CPU while the woken process (a PostgreSQL backend) runs: machine noise more than the line's code.
  if (url === "" && functionName === "writev") return { part: "socket writes (writev)", file: "" }
  if (url === "") return { part: functionName.startsWith("(") ? functionName : "(V8 builtins, native)", file: "" }
  if (url.startsWith("node:")) return { part: "Node internals", file: url.slice(5) }
  const path = url.replace(/^file:\/\//, "")
  const at = path.lastIndexOf("/node_modules/")
  if (at >= 0) {
    const inner = path.slice(at + 14)
    const parts = inner.split("/")
    const name = parts[0]!.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!
    const file = inner.slice(name.length + 1).replace(/^dist\/(esm\/|cjs\/)?/, "").replace(/^(lib|esm)\//, "")
    if (name === "effect") return { part: /^(unstable\/)?http\//.test(file) ? "Effect HTTP" : "Effect core", file: `effect/${file}` }
    if (name === "@effect/platform") return { part: "Effect HTTP", file: `@effect/platform/${file}` }
    if (name.startsWith("@effect/platform-node")) return { part: "@effect/platform-node", file: `platform-node/${file}` }
    if (/^pg(-|$)/.test(name)) return { part: "pg driver", file: `${name}/${file}` }
    return { part: name, file: `${name}/${file}` }
  }
  for (const dist of [join(V4, "dist"), join(ROOT, "dist")]) {
    if (path.startsWith(dist + "/")) return { part: "effect-session", file: `effect-session/${path.slice(dist.length + 1)}` }
  }
  if (path.includes("/bench/")) return { part: "bench harness", file: basename(path) }
  return { part: "other", file: basename(path) }
}

/** Self time (µs) per part and per frame (name and file, no line: the same function on both lines). */
const selfTimes = (profile: CpuProfile) => {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parts = new Map<string, number>()
  const frames = new Map<string, number>()
  let busy = 0
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i + 1] ?? 0
    const { functionName, url } = byId.get(id)!.callFrame
    if (functionName === "(idle)") return
    busy += dt
    const { file, part } = place(url, functionName)
    parts.set(part, (parts.get(part) ?? 0) + dt)
    const frame = `${functionName || "(anonymous)"}${file ? ` ${file}` : ""}`
    frames.set(frame, (frames.get(frame) ?? 0) + dt)
  })
  return { busy, parts, frames, seconds: (profile.endTime - profile.startTime) / 1e6 }
}

type Profiled = { readonly file: string; readonly rate: number }

/** One line's profile of a row: the store worker profiles itself; a server is profiled around a load. */
const profileSide = async (
  target: Row,
  line: Line,
  workers: Partial<Record<Line, Worker>>,
  servers: Partial<Record<Line, HttpServer>>
): Promise<Profiled> => {
  mkdirSync(PROFILE_DIR, { recursive: true })
  const file = join(PROFILE_DIR, `lines-${target.row.replace(/\W+/g, "-")}-c${target.key.concurrency}-${line}.cpuprofile`)
  if (target.part === "store") {
    const stats = await workers[line]!.call<Stats>({ cmd: "profile", op: target.key.op, concurrency: target.key.concurrency, seconds: PROFILE_SECONDS, file })
    return { file, rate: stats.opsPerSec }
  }
  const server = servers[line]!
  await load(server.url, target.key.op, server.cookies, 1)
  const started = server.waitFor(/profile started/)
  server.child.kill("SIGUSR2")
  await started
  const result = await load(server.url, target.key.op, server.cookies, PROFILE_SECONDS)
  const written = server.waitFor(/profile written/)
  server.child.kill("SIGUSR2")
  await written
  renameSync(serverProfile(line), file)
  return { file, rate: result.reqPerSec }
}

const profileRow = async (
  target: Row,
  workers: Partial<Record<Line, Worker>>,
  servers: Partial<Record<Line, HttpServer>>
) => {
  const sides = {} as Record<Line, ReturnType<typeof selfTimes> & Profiled & { perOp: (us: number) => number }>
  for (const line of LINES) {
    const profiled = await profileSide(target, line, workers, servers)
    const times = selfTimes(JSON.parse(readFileSync(profiled.file, "utf8")) as CpuProfile)
    const ops = profiled.rate * times.seconds
    sides[line] = { ...times, ...profiled, perOp: (us) => us / ops }
  }
  const { v3, v4 } = sides
  const names = [...new Set([...v3.parts.keys(), ...v4.parts.keys()])]
  const parts = names.map((part) => {
    const a = v3.perOp(v3.parts.get(part) ?? 0)
    const b = v4.perOp(v4.parts.get(part) ?? 0)
    return { part, "v3 µs/op": a, "v4 µs/op": b, "v4 − v3": b - a }
  }).sort((x, y) => Math.abs(y["v4 − v3"]) - Math.abs(x["v4 − v3"]))
  parts.push({ part: "total (busy CPU)", "v3 µs/op": v3.perOp(v3.busy), "v4 µs/op": v4.perOp(v4.busy), "v4 − v3": v4.perOp(v4.busy) - v3.perOp(v3.busy) })
  const top = (side: typeof v3) =>
    [...side.frames].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([frame, us]) => ({
      frame,
      "µs/op": side.perOp(us),
      "% of busy": (100 * us) / side.busy
    }))
  const frameNames = [...new Set([...v3.frames.keys(), ...v4.frames.keys()])]
  const differ = frameNames.map((frame) => {
    const a = v3.perOp(v3.frames.get(frame) ?? 0)
    const b = v4.perOp(v4.frames.get(frame) ?? 0)
    return { frame, "v3 µs/op": a, "v4 µs/op": b, "v4 − v3": b - a }
  }).sort((x, y) => Math.abs(y["v4 − v3"]) - Math.abs(x["v4 − v3"])).slice(0, 20)
  console.log(`\n### Profile: ${target.row} (${target.conc}), v4/v3 ${target.ratio.toFixed(2)}: ${PROFILE_SECONDS}s of load per line`)
  console.log(`v3 ${Math.round(v3.rate)} ops/s, v4 ${Math.round(v4.rate)} ops/s while profiled; profiles: ${v3.file}, ${v4.file}\n`)
  console.log("Self time per operation by part (µs of this process's CPU per operation):")
  printTable(parts)
  console.log("\nFrames whose self time per operation differs most between the lines:")
  printTable(differ)
  console.log("\nTop self-time frames, v3:")
  printTable(top(v3))
  console.log("\nTop self-time frames, v4:")
  printTable(top(v4))
  return { row: target.row, conc: target.conc, ratio: target.ratio, files: { v3: v3.file, v4: v4.file }, rates: { v3: v3.rate, v4: v4.rate }, parts, differ, top: { v3: top(v3), v4: top(v4) } }
}

const fmt = (n: number) => (Number.isFinite(n) ? (n >= 100 ? String(Math.round(n)) : n.toFixed(2)) : "")

const drop = async (tables: ReadonlyArray<string>) => {
  const admin = new pg.Client({ connectionString: databaseUrl() })
  await admin.connect()
  try {
    for (const table of tables) await admin.query(`DROP TABLE IF EXISTS "${table}"`)
  } finally {
    await admin.end()
  }
}

export const runLinesBench = async () => {
  if (!v4Built()) {
    throw new Error(`the Effect 4 line is not built (v4/dist or v4/node_modules is missing). Build it first, from the repository root:\n  ${BUILD_V4}`)
  }
  if (!existsSync(join(ROOT, "dist", "index.js"))) throw new Error("dist/ is missing: run `npm run build` (npm run bench does)")
  const built = statSync(join(V4, "dist", "index.js")).mtime
  const changed = changedAfter(join(V4, "src"), built.getTime())
  if (changed.length > 0) {
    console.log(`NOTE: ${changed.slice(0, 5).join(", ")}${changed.length > 5 ? ` and ${changed.length - 5} more` : ""} changed since v4/dist was built (${built.toISOString()}); this run measures v4/dist as built. To rebuild:\n  ${BUILD_V4}`)
  }
  const node = node22()
  const version = execFileSync(node, ["--version"], { encoding: "utf8" }).trim()
  console.log(`\n## The two lines: Effect 3 (dist/) against Effect 4 (v4/dist), each in its own processes under Node ${version}`)
  console.log(`${ROUNDS} interleaved rounds of ${SECONDS}s per row; store: layerPool, pool 10, ${ROWS} live sessions per line's table; HTTP: ${CONNECTIONS} connections, ${SESSIONS} sessions per server; ${databaseUrl().replace(/:[^:@/]*@/, ":***@")}\n`)
  const rows: Array<Row> = []
  const profiles: Array<unknown> = []
  const workers: Partial<Record<Line, Worker>> = {}
  const servers: Partial<Record<Line, HttpServer>> = {}
  const wantsProfile = (r: Row) => PROFILE === "all" || (PROFILE !== "off" && PROFILE !== "0" && r.ratio < THRESHOLD)
  try {
    if (PARTS.includes("store")) {
      for (const line of LINES) {
        workers[line] = await startWorker(node, line)
        await workers[line].call({ cmd: "prepare", rows: ROWS })
      }
      rows.push(...await storeRows(workers as Record<Line, Worker>))
      for (const target of rows.filter((r) => r.part === "store" && wantsProfile(r))) profiles.push(await profileRow(target, workers, servers))
      for (const line of LINES) {
        await workers[line]!.call({ cmd: "drop" })
        workers[line]!.child.kill("SIGTERM")
        delete workers[line]
      }
    }
    if (PARTS.includes("http")) {
      await drop(Object.values(HTTP_TABLE))
      mkdirSync(PROFILE_DIR, { recursive: true })
      for (const line of LINES) servers[line] = await startServer(node, line)
      const http = await httpRows(servers as Record<Line, HttpServer>)
      rows.push(...http)
      for (const target of http.filter(wantsProfile)) profiles.push(await profileRow(target, workers, servers))
    }
  } finally {
    for (const w of Object.values(workers)) w.child.kill("SIGTERM")
    for (const s of Object.values(servers)) s.child.kill("SIGTERM")
    await Promise.all([...Object.values(workers), ...Object.values(servers)].map((p) => p.exited.catch(() => {})))
    await drop([...Object.values(TABLE), ...Object.values(HTTP_TABLE)])
  }
  const table = rows.map((r) => ({
    row: r.row,
    conc: r.conc,
    "v3 ops/s": Math.round(r.v3.rate),
    "v4 ops/s": Math.round(r.v4.rate),
    "v4/v3": r.ratio,
    "rounds' v4/v3": `${fmt(Math.min(...r.roundRatios))}–${fmt(Math.max(...r.roundRatios))}`,
    "p50 ms v3 / v4": `${fmt(r.v3.p50Ms)} / ${fmt(r.v4.p50Ms)}`,
    "p99 ms v3 / v4": `${fmt(r.v3.p99Ms)} / ${fmt(r.v4.p99Ms)}`,
    "sessions / statement v3 / v4": r.v3.batch === undefined ? "" : `${fmt(r.v3.batch)} / ${fmt(r.v4.batch!)}`,
    errors: r.v3.errors + r.v4.errors,
    [`≥ ${THRESHOLD}`]: r.ratio >= THRESHOLD ? "yes" : "NO"
  }))
  console.log(`\n## v4 / v3 (ops/s: store; req/s: HTTP; median of ${ROUNDS} rounds)\n`)
  printTable(table)
  if (profiles.length === 0 && PROFILE !== "off") console.log(`\nEvery row is at ${THRESHOLD}× or more: nothing profiled (BENCH_LINES_PROFILE=all to profile anyway).`)
  return { node: version, seconds: SECONDS, rounds: ROUNDS, rows: ROWS, connections: CONNECTIONS, sessions: SESSIONS, results: rows, table, profiles }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const machine = await describeMachine()
  const lines = await runLinesBench()
  console.log(`\nwritten to ${writeResult("lines", { machine, ...lines })}`)
}
