import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The browser test, the fault-injection suite and the other backends have scripts of their own (test:browser,
    // test:faults, test:backends), which .ci/run runs too.
    exclude: ["test/browser/**", "test/faults/**", "test/backends/**", "node_modules/**"],
    // Three test files at a time: most of the time is spent waiting on PostgreSQL and on sockets, so on 2 cores
    // three workers finish the suite in about 50 s where vitest's default (cores - 1: one) takes 80.
    maxWorkers: 3,
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
