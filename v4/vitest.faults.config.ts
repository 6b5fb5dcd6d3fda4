import { defineConfig } from "vitest/config"

/** `npm run test:faults`: fault injection against the real PostgreSQL server (never stopped; see test/faults). */
export default defineConfig({
  test: {
    include: ["test/faults/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // One file at a time: the tests measure latency, and the machine has two cores.
    fileParallelism: false
  }
})
