/**
 * Throwaway PostgreSQL clusters for fault tests, made with Debian's postgresql-common (pg_createcluster,
 * pg_ctlcluster, pg_basebackup) on ports 5441–5449: a primary, a streaming standby of it, a hard stop, a promotion.
 * The shared server (`main`, 5432) is never touched. Every cluster is named `es_fault_…`; `dropLeftovers` removes
 * those of an aborted run, and each cluster is dropped with the scope that made it, also when a test fails.
 */
import { Effect, type Scope } from "effect"
import { execFile } from "node:child_process"
import { readdirSync } from "node:fs"
import { readdir, readFile, rm, writeFile } from "node:fs/promises"
import pg from "pg"

/** The installed PostgreSQL (Debian keeps one configuration folder per major version). */
const version = readdirSync("/etc/postgresql").sort((a, b) => Number(a) - Number(b)).at(-1)!
const prefix = "es_fault_"
const bin = `/usr/lib/postgresql/${version}/bin`

/** Runs a command as root, within `timeoutMs`; fails with its output. */
export const run = (command: string, args: ReadonlyArray<string>, timeoutMs = 60_000): Promise<string> =>
  new Promise((resolve, reject) =>
    execFile(command, args, { timeout: timeoutMs, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } }, (error, stdout, stderr) =>
      error ? reject(new Error(`${command} ${args.join(" ")}: ${error.message}\n${stdout}${stderr}`)) : resolve(stdout))
  )

/** A cluster of the test's own. */
export interface Node {
  readonly name: string
  readonly port: number
  readonly dataDir: string
  /** Its URL, for `database` (default `postgres`), as the superuser over TCP. */
  readonly url: (database?: string) => string
}

const node = (name: string, port: number): Node => ({
  name,
  port,
  dataDir: `/var/lib/postgresql/${version}/${name}`,
  url: (database = "postgres") => `postgres://postgres@127.0.0.1:${port}/${database}`
})

/** Trust on the loopback, replication included: these clusters hold nothing and listen nowhere else. */
const hba = [
  "local all all trust",
  "host all all 127.0.0.1/32 trust",
  "host all all ::1/128 trust",
  "host replication all 127.0.0.1/32 trust",
  "host replication all ::1/128 trust"
].join("\n") + "\n"

/** Settings of every throwaway cluster: small, loopback only (IPv6 too), fsync kept (the tests measure durability). */
const settings = (extra: Record<string, string>) =>
  Object.entries({
    listen_addresses: "'127.0.0.1,::1'",
    max_connections: "60",
    shared_buffers: "'16MB'",
    max_wal_senders: "4",
    wal_keep_size: "'64MB'",
    ...extra
  }).map(([key, value]) => `${key} = ${value}`).join("\n") + "\n"

const configure = async (target: Node, extra: Record<string, string>) => {
  await writeFile(`/etc/postgresql/${version}/${target.name}/pg_hba.conf`, hba)
  await writeFile(`/etc/postgresql/${version}/${target.name}/conf.d/50-fault-test.conf`, settings(extra))
}

const ctl = (target: Node, action: string, ...args: Array<string>) =>
  run("pg_ctlcluster", ["--skip-systemctl-redirect", version, target.name, action, ...args])

/** Drops a cluster (stopping it if it runs) and whatever pg_dropcluster leaves behind. */
const drop = async (name: string) => {
  await run("pg_dropcluster", ["--stop", version, name]).catch(() => undefined)
  await rm(`/etc/postgresql/${version}/${name}`, { recursive: true, force: true })
  await rm(`/var/lib/postgresql/${version}/${name}`, { recursive: true, force: true })
}

/** Drops every `es_fault_…` cluster: the leftovers of a run that was killed before its finalizers ran. */
export const dropLeftovers = Effect.promise(async () => {
  const listed = await run("pg_lsclusters", ["--no-header"])
  const names = listed.split("\n").map((line) => line.trim().split(/\s+/)[1]).filter((n): n is string => n?.startsWith(prefix) === true)
  const stray = (await readdir(`/etc/postgresql/${version}`)).filter((n) => n.startsWith(prefix))
  for (const name of new Set([...names, ...stray])) await drop(name)
})

/** Runs `f` on a superuser connection to `target`'s `postgres` database. */
export const admin = <A>(target: Node, f: (client: pg.Client) => Promise<A>): Promise<A> => adminAt(target.url(), f)

/** `f` on a connection of its own to the server at `url`, closed afterwards. */
export const adminAt = async <A>(url: string, f: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** Polls `check` every 50 ms until it holds, for at most `timeoutMs`. */
export const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** A new, running primary on `port`, dropped with the scope. */
export const primary = (suffix: string, port: number, extra: Record<string, string> = {}): Effect.Effect<Node, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const target = node(`${prefix}${suffix}`, port)
      await drop(target.name)
      // --no-sync: initdb's own fsync (a second per cluster here) buys nothing for a cluster made for one test.
      await run("pg_createcluster", [version, target.name, "--port", String(port), "--", "--no-sync"])
      await configure(target, extra)
      await ctl(target, "start")
      return target
    }),
    (target) => Effect.promise(() => drop(target.name))
  )

/**
 * A standby of `source` on `port`, streaming from it (pg_basebackup -R), dropped with the scope. With `synchronous`,
 * the primary then waits for it on every commit (`synchronous_standby_names`, set only once it streams: a commit
 * would otherwise wait for a standby that is not there yet). With `through`, it streams through that port (a proxy
 * in front of `source`, to give replication a network's latency).
 */
export const standby = (
  source: Node,
  suffix: string,
  port: number,
  options: { readonly synchronous: boolean; readonly through?: number }
): Effect.Effect<Node, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const target = node(`${prefix}${suffix}`, port)
      await drop(target.name)
      await run("pg_createcluster", [version, target.name, "--port", String(port), "--", "--no-sync"])
      await configure(target, {})
      await rm(target.dataDir, { recursive: true, force: true })
      await run("install", ["-d", "-o", "postgres", "-g", "postgres", "-m", "700", target.dataDir])
      await run("runuser", [
        "-u", "postgres", "--", `${bin}/pg_basebackup`,
        "-h", "127.0.0.1", "-p", String(source.port), "-U", "postgres",
        "-D", target.dataDir, "-R", "-X", "stream", "-c", "fast",
        // The walreceiver's name on the primary, for synchronous_standby_names.
        "-d", `application_name=${target.name}`
      ])
      if (options.through !== undefined) {
        const auto = `${target.dataDir}/postgresql.auto.conf`
        const conf = await readFile(auto, "utf8")
        await writeFile(auto, conf.replace(` port=${source.port} `, ` port=${options.through} `))
      }
      await ctl(target, "start")
      await waitFor(`${target.name} streams from ${source.name}`, () =>
        admin(source, (c) =>
          c.query("SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'", [target.name])
        ).then((r) => r.rows.length === 1))
      if (options.synchronous) {
        await admin(source, async (c) => {
          await c.query(`ALTER SYSTEM SET synchronous_standby_names = '"${target.name}"'`)
          await c.query("SELECT pg_reload_conf()")
        })
        await waitFor(`${target.name} is synchronous`, () =>
          admin(source, (c) => c.query("SELECT sync_state FROM pg_stat_replication WHERE application_name = $1", [target.name]))
            .then((r) => r.rows[0]?.sync_state === "sync"))
      }
      return target
    }),
    (target) => Effect.promise(() => drop(target.name))
  )

/** Stops `target` as a crash would (`pg_ctl stop -m immediate`): no shutdown checkpoint, clients cut at once. */
export const crash = (target: Node) => Effect.promise(() => ctl(target, "stop", "-m", "immediate"))

/** Promotes a standby (`pg_promote()`, which waits until it accepts writes) and returns when it does. */
export const promote = (target: Node) =>
  Effect.promise(() => admin(target, (c) => c.query("SELECT pg_promote(true, 30)")).then((r) => r.rows[0]))
