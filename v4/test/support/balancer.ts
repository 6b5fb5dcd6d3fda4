/**
 * A round-robin HTTP load balancer in front of app instances, for fault tests: each request goes to the next
 * instance, a new connection each time; a refused connection (an instance stopped or not yet started: the request
 * never reached it, so sending it elsewhere is safe) goes to the next one, as a balancer's redispatch does; when all
 * refuse, it tries them again for up to about two seconds. Any other failure is answered 502. It counts what it did.
 */
import { createServer, request } from "node:http"
import type { AddressInfo } from "node:net"

export interface Balancer {
  readonly base: string
  readonly counts: { forwarded: number; redispatched: number; failed: Record<string, number> }
  /** Each failure answered 502: when, at which instance, why. */
  readonly failures: ReadonlyArray<{ readonly at: number; readonly port: number; readonly code: string }>
  readonly close: () => Promise<void>
}

/** Starts a balancer on a free loopback port over the instances at `ports`. */
export const start = (ports: ReadonlyArray<number>): Promise<Balancer> => {
  const counts = { forwarded: 0, redispatched: 0, failed: {} as Record<string, number> }
  const failures: Array<{ at: number; port: number; code: string }> = []
  let next = 0
  const server = createServer((incoming, outgoing) => {
    const chunks: Array<Buffer> = []
    incoming.on("data", (chunk: Buffer) => chunks.push(chunk))
    incoming.on("end", () => forward(next++, 0))
    /** The `tried`-th attempt of a request that started at instance `first`: the instances in turn from there. */
    const forward = (first: number, tried: number) => {
      const port = ports[(first + tried) % ports.length]!
      const upstream = request({
        host: "127.0.0.1",
        port,
        method: incoming.method,
        path: incoming.url,
        headers: incoming.headers,
        agent: false
      }, (reply) => {
        counts.forwarded++
        outgoing.writeHead(reply.statusCode ?? 502, reply.headers)
        reply.pipe(outgoing)
        reply.on("error", () => outgoing.destroy())
      })
      upstream.on("error", (error: NodeJS.ErrnoException) => {
        // Every instance refused: try them all again shortly, for up to about two seconds.
        if (error.code === "ECONNREFUSED" && tried < 40 * ports.length) {
          counts.redispatched++
          setTimeout(() => forward(first, tried + 1), (tried + 1) % ports.length === 0 ? 50 : 0)
          return
        }
        const code = error.code ?? "other"
        counts.failed[code] = (counts.failed[code] ?? 0) + 1
        failures.push({ at: Date.now(), port, code })
        if (outgoing.headersSent) outgoing.destroy()
        else outgoing.writeHead(502).end()
      })
      upstream.end(Buffer.concat(chunks))
    }
  })
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resolve({
        base: `http://127.0.0.1:${port}`,
        counts,
        failures,
        close: () => new Promise((done) => server.close(() => done()))
      })
    })
  })
}
