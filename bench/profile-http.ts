/**
 * A CPU profile of the benchmark's effect-session server under load: the server runs with `node --cpu-prof`,
 * 1000 sessions are created, then 32 connections load one route (`/write` by default) for BENCH_HTTP_SECONDS (8);
 * the profile (`.cpuprofile`, for Chrome DevTools or `speedscope`) is written to PROFILE_DIR when the server stops.
 *
 *   npx tsx bench/profile-http.ts [/read|/write]      (BENCH_DIST=path/to/dist profiles another build)
 */
import autocannon from "autocannon"
import { spawn } from "node:child_process"
import { join } from "node:path"

const route = process.argv[2] ?? "/write"
const dir = process.env.PROFILE_DIR ?? join(import.meta.dirname, "results", "profiles")
const seconds = Number(process.env.BENCH_HTTP_SECONDS ?? 8)
const child = spawn(process.execPath, [
  "--cpu-prof",
  `--cpu-prof-dir=${dir}`,
  "--import",
  "tsx",
  join(import.meta.dirname, "http", "server.ts"),
  "effect-session"
], { env: process.env, stdio: ["ignore", "pipe", "inherit"] })
const url = await new Promise<string>((resolve) =>
  child.stdout!.on("data", (chunk: Buffer) => {
    const match = /listening on (\S+)/.exec(chunk.toString())
    if (match) resolve(match[1]!)
  })
)
const cookies: Array<string> = []
for (let batch = 0; batch < 1000; batch += 50) {
  const replies = await Promise.all(Array.from({ length: 50 }, () => fetch(`${url}/login`, { method: "POST" })))
  for (const reply of replies) {
    cookies.push(reply.headers.getSetCookie()[0]?.split(";")[0] ?? "none=1")
    await reply.text()
  }
}
const load = (duration: number) =>
  autocannon({
    url: `${url}${route}`,
    connections: 32,
    duration,
    requests: [{
      setupRequest: (request: any) => ({
        ...request,
        headers: { ...request.headers, cookie: cookies[Math.floor(Math.random() * cookies.length)] }
      })
    }]
  })
await load(2) // warm-up
const result = await load(seconds)
console.log(`${route}: ${Math.round(result.requests.average)} req/s, ${result.non2xx} non-2xx; profile in ${dir}`)
child.kill("SIGINT")
await new Promise((resolve) => child.once("exit", resolve))
