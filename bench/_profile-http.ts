import autocannon from "autocannon"
import { spawn } from "node:child_process"
const child = spawn(process.execPath, ["--cpu-prof", "--cpu-prof-dir=/tmp/httpprof", "--import", "tsx", "bench/http/server.ts", "effect-session"], { stdio: ["ignore", "pipe", "inherit"] })
const url: string = await new Promise((resolve) => child.stdout!.on("data", (d) => { const m = /listening on (\S+)/.exec(String(d)); if (m) resolve(m[1]!) }))
const cookies: string[] = []
for (let i = 0; i < 200; i++) { const r = await fetch(url + "/login", { method: "POST" }); cookies.push(r.headers.getSetCookie()[0]!.split(";")[0]!); await r.text() }
const path = process.argv[2] ?? "/read"
const res = await autocannon({ url: url + path, connections: 32, duration: 6, requests: [{ setupRequest: (req: any) => ({ ...req, headers: { ...req.headers, cookie: cookies[Math.floor(Math.random() * cookies.length)] } }) }] })
console.log(path, res.requests.average, "req/s", "p50", res.latency.p50, "non2xx", res.non2xx)
child.kill("SIGINT")
await new Promise((r) => setTimeout(r, 2000))
