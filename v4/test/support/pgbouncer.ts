/**
 * A PgBouncer of the test's own (Debian's `pgbouncer`), on the loopback in front of one server, started and stopped
 * by the test: its process is ours, found again by its pidfile if an aborted run left it behind. It runs as
 * `postgres` (PgBouncer refuses root) with trust authentication: it listens on 127.0.0.1 only.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import pg from "pg"

const dir = "/tmp/es-fault-pgbouncer"
const pidfile = `${dir}/pgbouncer.pid`
const ini = `${dir}/pgbouncer.ini`

/** The installed PgBouncer's version, as `[major, minor]` and as printed. */
export const version = (): { readonly major: number; readonly minor: number; readonly text: string } => {
  const text = execFileSync("pgbouncer", ["--version"], { encoding: "utf8" }).split("\n")[0]!.trim()
  const [, major, minor] = /PgBouncer (\d+)\.(\d+)/.exec(text) ?? []
  return { major: Number(major), minor: Number(minor), text }
}

/** Whether this PgBouncer can keep named prepared statements itself (`max_prepared_statements`, 1.21 and later). */
export const keepsPreparedStatements = () => {
  const { major, minor } = version()
  return major > 1 || (major === 1 && minor >= 21)
}

/** Ends a PgBouncer an earlier run of this suite started and did not stop (by its pidfile, and only if it is ours). */
const stopLeftover = () => {
  if (!existsSync(pidfile)) return
  const pid = Number(readFileSync(pidfile, "utf8").trim())
  const cmdline = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, "utf8") : ""
  if (pid > 0 && cmdline.includes(ini)) process.kill(pid, "SIGTERM")
}

/** A running PgBouncer of the test's. */
export interface PgBouncer {
  readonly port: number
  readonly version: string
  /** The URL of `database` through the bouncer. */
  readonly url: (database: string) => string
  readonly stop: () => Promise<void>
}

/**
 * Starts PgBouncer on `port` in front of `target` (every database), in `poolMode`, with `poolSize` server connections
 * per database and user; resolves once it accepts a query (within 15 s).
 */
export const start = async (options: {
  readonly port: number
  readonly target: { readonly host: string; readonly port: number }
  readonly poolMode: "session" | "transaction"
  readonly poolSize: number
  readonly settings?: Readonly<Record<string, string | number>>
}): Promise<PgBouncer> => {
  stopLeftover()
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir)
  const settings = {
    listen_addr: "127.0.0.1",
    listen_port: options.port,
    unix_socket_dir: "",
    auth_type: "trust",
    auth_file: `${dir}/users.txt`,
    pool_mode: options.poolMode,
    default_pool_size: options.poolSize,
    max_client_conn: 200,
    pidfile,
    logfile: `${dir}/pgbouncer.log`,
    ...options.settings
  }
  writeFileSync(ini, [
    "[databases]",
    `* = host=${options.target.host} port=${options.target.port}`,
    "[pgbouncer]",
    ...Object.entries(settings).map(([key, value]) => `${key} = ${value}`)
  ].join("\n") + "\n")
  writeFileSync(`${dir}/users.txt`, `"postgres" ""\n`)
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }))
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }))
  for (const path of [dir, ini, `${dir}/users.txt`]) chownSync(path, uid, gid)
  // setpriv execs PgBouncer in place, so the child's pid is PgBouncer's.
  const child: ChildProcess = spawn("setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", "pgbouncer", ini], {
    stdio: ["ignore", "ignore", "pipe"]
  })
  let stderr = ""
  child.stderr!.on("data", (chunk) => (stderr += chunk))
  const url = (database: string) => `postgres://postgres@127.0.0.1:${options.port}/${database}`
  const deadline = Date.now() + 15_000
  for (;;) {
    const client = new pg.Client({ connectionString: url("postgres"), connectionTimeoutMillis: 1_000 })
    const ready = await client.connect().then(() => client.query("SELECT 1")).then(() => true, () => false)
    await client.end().catch(() => undefined)
    if (ready) break
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGTERM")
      throw new Error(`PgBouncer did not start: ${stderr}${existsSync(`${dir}/pgbouncer.log`) ? readFileSync(`${dir}/pgbouncer.log`, "utf8") : ""}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    port: options.port,
    version: version().text,
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve()
        const timer = setTimeout(() => (child.kill("SIGKILL"), resolve()), 5_000)
        child.once("exit", () => (clearTimeout(timer), resolve()))
        child.kill("SIGTERM")
      })
  }
}
