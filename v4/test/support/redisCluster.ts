/**
 * Throwaway Redis servers for the tests: a standalone server, or a Cluster of masters and replicas built with
 * `redis-cli --cluster create`, each process in a directory of its own under the temp dir (no persistence), on
 * ports the caller picks from 7001–7049. Everything is stopped (by the pids started here) and deleted when the
 * scope closes, also after a failure; leftovers of an aborted run on the same ports are cleaned first.
 */
import { Effect } from "effect"
import { execFile, spawn } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { Redis } from "ioredis"

const run = promisify(execFile)
const root = join(tmpdir(), "effect-session-redis")
const dirOf = (port: number) => join(root, String(port))
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Whether `pid` is a redis-server started for `port` by these helpers (checked before ending it). */
const ours = (pid: number, port: number) => {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8")
    return cmdline.includes("redis-server") && cmdline.includes(`:${port}`)
  } catch {
    return false
  }
}

/** Ends a leftover server of an aborted run on `port` (only one these helpers started) and deletes its directory. */
const cleanLeftover = async (port: number) => {
  const pidFile = join(dirOf(port), "pid")
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, "utf8"))
    if (Number.isInteger(pid) && pid > 0 && ours(pid, port)) {
      process.kill(pid, "SIGKILL")
      for (let i = 0; i < 50 && ours(pid, port); i++) await sleep(20)
    }
  }
  rmSync(dirOf(port), { recursive: true, force: true })
}

/** A server process of ours. */
export interface Server {
  readonly port: number
  readonly pid: number
  /** Kills it at once (SIGKILL): a crash, no goodbye to its peers. */
  readonly kill: () => Promise<void>
  readonly alive: () => boolean
}

export interface ServerOptions {
  /** Cluster mode, with this `cluster-node-timeout`. */
  readonly cluster?: { readonly nodeTimeout: number } | undefined
  /** An append-only file fsynced before every reply (for restart tests); default: no persistence at all. */
  readonly durable?: boolean | undefined
  /** Keep the directory of an earlier run on this port (a restart); default: leftovers are cleaned first. */
  readonly restart?: boolean | undefined
}

/** Starts `redis-server` on `port` (127.0.0.1 only) and waits until it answers. */
export const startServer = async (port: number, options: ServerOptions = {}): Promise<Server> => {
  const { cluster } = options
  if (options.restart !== true) await cleanLeftover(port)
  const dir = dirOf(port)
  mkdirSync(dir, { recursive: true })
  const persistence = options.durable === true ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]
  const args = [
    "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", ...persistence,
    "--daemonize", "no", "--logfile", join(dir, "log"), "--protected-mode", "no", "--pidfile", join(dir, "pid"),
    // The name carries the port, so a leftover can be recognised as ours before it is ended.
    "--proc-title-template", `{title} 127.0.0.1:${port} effect-session-test`
  ]
  if (cluster !== undefined) {
    args.push("--cluster-enabled", "yes", "--cluster-config-file", join(dir, "nodes.conf"), "--cluster-node-timeout", String(cluster.nodeTimeout))
  }
  return spawnRedis(port, args)
}

/** Runs `redis-server` with `args` and waits (bounded) until the process on `port` answers. */
const spawnRedis = async (port: number, args: ReadonlyArray<string>): Promise<Server> => {
  const child = spawn("redis-server", args, { stdio: "ignore" })
  const pid = child.pid!
  let exited = false
  child.once("exit", () => void (exited = true))
  const probe = new Redis({ port, host: "127.0.0.1", lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
  probe.on("error", () => {})
  for (let i = 0; i < 100; i++) {
    try {
      await probe.connect()
      await probe.ping()
      break
    } catch {
      await sleep(50)
    }
  }
  probe.disconnect()
  return {
    port,
    pid,
    alive: () => !exited,
    kill: async () => {
      if (exited) return
      child.kill("SIGKILL")
      for (let i = 0; i < 100 && !exited; i++) await sleep(20)
    }
  }
}

/** A Sentinel on `port` watching the master on `masterPort` as `name` (its config file in its own directory). */
export const startSentinel = async (port: number, masterPort: number, name: string): Promise<Server> => {
  await cleanLeftover(port)
  const dir = dirOf(port)
  mkdirSync(dir, { recursive: true })
  const config = join(dir, "sentinel.conf")
  writeFileSync(config, [
    `port ${port}`,
    "bind 127.0.0.1",
    `dir ${dir}`,
    `pidfile ${join(dir, "pid")}`,
    `logfile ${join(dir, "log")}`,
    `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`,
    `sentinel down-after-milliseconds ${name} 1000`
  ].join("\n") + "\n")
  return spawnRedis(port, [config, "--sentinel"])
}

const stopAll = (servers: ReadonlyArray<Server>) =>
  Effect.promise(async () => {
    for (const server of servers) {
      await server.kill()
      rmSync(dirOf(server.port), { recursive: true, force: true })
    }
  })

/** A master and a Sentinel watching it, stopped and deleted with the scope. */
export const sentinel = (masterPort: number, sentinelPort: number, name: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const master = await startServer(masterPort)
      try {
        return [master, await startSentinel(sentinelPort, masterPort, name)] as const
      } catch (error) {
        await Effect.runPromise(stopAll([master]))
        throw error
      }
    }),
    (servers) => stopAll(servers)
  )

/** A standalone server of the test's own, stopped and deleted with the scope. */
export const standalone = (port: number, options: Omit<ServerOptions, "cluster"> = {}) =>
  Effect.acquireRelease(Effect.promise(() => startServer(port, options)), (server) => stopAll([server]))

/** The `CLUSTER INFO` field `field` of the node on `port`. */
const clusterInfo = async (port: number, field: string) => {
  const client = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on("error", () => {})
  try {
    const info = await client.cluster("INFO")
    return new RegExp(`${field}:(\\S+)`).exec(info)?.[1]
  } catch {
    return undefined
  } finally {
    client.disconnect()
  }
}

/** Polls (bounded) until `check` holds. */
export const until = async (what: string, check: () => Promise<boolean>, maxMillis = 30_000) => {
  const started = Date.now()
  while (Date.now() - started < maxMillis) {
    if (await check()) return Date.now() - started
    await sleep(50)
  }
  throw new Error(`${what}: not within ${maxMillis} ms`)
}

export interface TestCluster {
  /** The processes running now (a restarted node's new one replaces its old one). */
  readonly servers: ReadonlyArray<Server>
  /** Starts a killed node again, with its cluster configuration: it rejoins (a failed master as a replica). */
  readonly restart: (port: number) => Promise<void>
  /** `host:port` of every node, for the store's `cluster` option. */
  readonly nodes: ReadonlyArray<string>
  /** The ports of the nodes that are masters now. */
  readonly masters: () => Promise<ReadonlyArray<number>>
}

/**
 * A Cluster of `masters` masters with one replica each on `ports` (2 × masters of them), built and stopped with
 * the scope. It is ready when every node says `cluster_state:ok` and every replica is in sync.
 */
export const cluster = (ports: ReadonlyArray<number>, options: { readonly nodeTimeout?: number } = {}) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const servers: Array<Server> = []
      try {
        for (const port of ports) servers.push(await startServer(port, { cluster: { nodeTimeout: options.nodeTimeout ?? 2_000 } }))
        const nodes = ports.map((port) => `127.0.0.1:${port}`)
        await run("redis-cli", ["--cluster", "create", ...nodes, "--cluster-replicas", "1", "--cluster-yes"], { timeout: 60_000 })
        await until("cluster_state:ok on every node", async () =>
          (await Promise.all(ports.map((port) => clusterInfo(port, "cluster_state")))).every((state) => state === "ok"))
        const masters = async () => {
          const roles = await Promise.all(ports.map(async (port) => {
            const client = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 0, retryStrategy: () => null })
            client.on("error", () => {})
            try {
              const replication = await client.info("replication")
              return /role:master/.test(replication) ? port : undefined
            } catch {
              return undefined
            } finally {
              client.disconnect()
            }
          }))
          return roles.filter((port): port is number => port !== undefined)
        }
        await until("every replica in sync", async () => {
          const links = await Promise.all(ports.map(async (port) => {
            const client = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 0, retryStrategy: () => null })
            client.on("error", () => {})
            try {
              const replication = await client.info("replication")
              return /role:master/.test(replication) ? /connected_slaves:1/.test(replication) : /master_link_status:up/.test(replication)
            } finally {
              client.disconnect()
            }
          }))
          return links.every(Boolean)
        })
        const restart = async (port: number) => {
          const at = servers.findIndex((server) => server.port === port)
          await servers[at]!.kill()
          servers[at] = await startServer(port, { cluster: { nodeTimeout: options.nodeTimeout ?? 2_000 }, restart: true })
        }
        return { servers, nodes, masters, restart } satisfies TestCluster
      } catch (error) {
        await Effect.runPromise(stopAll(servers))
        throw error
      }
    }),
    ({ servers }) => stopAll(servers)
  )

/**
 * A durable standalone server (append-only file, fsynced before every reply) that the test can kill and start
 * again on the same port and data; whichever process runs last is stopped with the scope.
 */
export const restartable = (port: number) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      let current = await startServer(port, { durable: true })
      return {
        port,
        kill: () => current.kill(),
        start: async () => void (current = await startServer(port, { durable: true, restart: true })),
        current: () => current
      }
    }),
    (server) => stopAll([server.current()])
  )
