/**
 * A TCP proxy for fault injection, on 127.0.0.1 with a free port, in front of one target.
 *
 * - `forward`: bytes pass both ways.
 * - `blackhole`: connections are accepted and kept, and every byte is silently dropped, both ways: what a
 *   partitioned or failed-over host looks like from the client (TCP stays up, nothing ever answers).
 * - `delay`: bytes pass after `ms` milliseconds.
 * - `cut()`: every open connection is reset at once.
 * - `retarget(target)`: new connections go to another server (as a moved DNS name or virtual IP would send them).
 */
import { Effect } from "effect"
import { createConnection, createServer, type Socket } from "node:net"

export type Mode = { readonly _tag: "forward" } | { readonly _tag: "blackhole" } | { readonly _tag: "delay"; readonly ms: number }

export interface TcpProxy {
  readonly port: number
  readonly setMode: (mode: Mode) => void
  /** Resets every open connection (new ones are still accepted). */
  readonly cut: () => void
  /** Sends new connections to `target` from now on; open ones stay where they are. */
  readonly retarget: (target: { readonly host: string; readonly port: number }) => void
  /** Connections accepted so far. */
  readonly accepted: () => number
}

/** Starts a proxy to `host:port` in the current scope. */
export const make = (initial: { readonly host: string; readonly port: number }) =>
  Effect.acquireRelease(
    Effect.callback<{ proxy: TcpProxy; close: () => void }>((resume) => {
      let mode: Mode = { _tag: "forward" }
      let target = initial
      let accepted = 0
      const sockets = new Set<Socket>()
      const relay = (from: Socket, to: Socket) =>
        from.on("data", (chunk) => {
          if (mode._tag === "forward") to.write(chunk)
          else if (mode._tag === "delay") setTimeout(() => to.writable && to.write(chunk), mode.ms)
          // blackhole: dropped
        })
      const server = createServer((client) => {
        accepted++
        const upstream = createConnection(target)
        for (const socket of [client, upstream]) {
          sockets.add(socket)
          socket.on("error", () => {})
          socket.on("close", () => {
            sockets.delete(socket)
            client.destroy()
            upstream.destroy()
          })
        }
        relay(client, upstream)
        relay(upstream, client)
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({
          proxy: {
            port,
            setMode: (next) => void (mode = next),
            cut: () => {
              for (const socket of sockets) socket.resetAndDestroy()
            },
            retarget: (next) => void (target = next),
            accepted: () => accepted
          },
          close: () => {
            for (const socket of sockets) socket.destroy()
            server.close()
          }
        }))
      })
    }),
    ({ close }) => Effect.sync(close)
  ).pipe(Effect.map(({ proxy }) => proxy))
