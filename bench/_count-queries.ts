import { spawn } from "node:child_process"
import pg from "pg"
const kind = process.argv[2]!
const child = spawn(process.execPath, ["--import", "tsx", "bench/http/server.ts", kind], { stdio: ["ignore", "pipe", "inherit"] })
const url: string = await new Promise((resolve) => child.stdout!.on("data", (d) => { const m = /listening on (\S+)/.exec(String(d)); if (m) resolve(m[1]!) }))
const cookies: string[] = []
for (let i = 0; i < 50; i++) { const r = await fetch(url + "/login", { method: "POST" }); cookies.push(r.headers.getSetCookie()[0]?.split(";")[0] ?? ""); await r.text() }
const admin = new pg.Client({ connectionString: "postgres://postgres@127.0.0.1:5432/test" }); await admin.connect()
const xacts = async () => { await new Promise((r) => setTimeout(r, 700)); const { rows } = await admin.query("SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = 'test'"); return Number(rows[0].n) }
for (const path of ["/read", "/write"]) {
  const before = await xacts()
  for (let i = 0; i < 500; i++) { const r = await fetch(url + path, { headers: { cookie: cookies[i % 50]! } }); await r.text() }
  const after = await xacts()
  console.log(kind, path, ((after - before - 1) / 500).toFixed(2), "transactions per request")
}
await admin.end(); child.kill()
