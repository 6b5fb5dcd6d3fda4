/** The performance goals of the batching issue, as ratios read from one run's store and HTTP results. */
import { printTable } from "./machine.js"

interface StoreResult {
  readonly op: string
  readonly concurrency: number
  readonly impl: string
  readonly opsPerSec: number
}

interface HttpResult {
  readonly route: string
  readonly server: string
  readonly reqPerSec: number
}

/** Each goal: what it compares, the target, and this run's ratio (blank when a part did not run). */
export const goals = (store: ReadonlyArray<StoreResult> | undefined, http: ReadonlyArray<HttpResult> | undefined) => {
  const ops = (op: string, c: number, impl: string) =>
    store?.find((r) => r.op === op && r.concurrency === c && r.impl === impl)?.opsPerSec ?? NaN
  const req = (route: string, server: string) => http?.find((r) => r.route === route && r.server === server)?.reqPerSec ?? NaN
  const rows: Array<[string, number, number]> = [
    ["store get vs raw pg, c1", 0.9, ops("get (hit)", 1, "effect-session") / ops("get (hit)", 1, "raw pg")],
    ["store get vs raw pg, c16", 1.2, ops("get (hit)", 16, "effect-session") / ops("get (hit)", 16, "raw pg")],
    ["store set vs raw pg, c1", 0.9, ops("set", 1, "effect-session") / ops("set", 1, "raw pg")],
    ["store set vs raw pg, c16", 1.2, ops("set", 16, "effect-session") / ops("set", 16, "raw pg")],
    ["HTTP read vs express", 3, req("/read", "effect-session") / req("/read", "express")],
    ["HTTP read vs fastify", 2.5, req("/read", "effect-session") / req("/read", "fastify")],
    ["HTTP write vs express", 2, req("/write", "effect-session") / req("/write", "express")],
    ["HTTP write vs fastify", 1.5, req("/write", "effect-session") / req("/write", "fastify")],
    ["HTTP read vs the same server without sessions", 0.6, req("/read", "effect-session") / req("/read", "effect-plain")]
  ]
  return rows.map(([measure, goal, ratio]) => ({
    measure,
    goal: `>= ${goal}`,
    ratio: Number.isFinite(ratio) ? ratio : "",
    met: Number.isFinite(ratio) ? (ratio >= goal ? "yes" : "no") : ""
  }))
}

/** Prints the goals table. */
export const printGoals = (rows: ReturnType<typeof goals>) => {
  console.log("\n## Goals (ratios from this run)\n")
  printTable(rows)
}
