import { defineConfig } from "vitest/config"

/**
 * `npm run test:backends`: the conformance suite on every other backend and variant (PostgreSQL durability modes,
 * the embedded engine, and the optional engines), kept out of `npm test` so that it stays quick.
 */
export default defineConfig({
  test: {
    include: ["test/backends/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // One file at a time: a Redis Cluster of six servers, SQLite's lock and event-loop tests and the embedded
    // engine each want the machine's two cores to themselves.
    fileParallelism: false
  }
})
