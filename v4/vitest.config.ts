import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The browser test, the fault-injection suite and the other backends have scripts of their own (test:browser,
    // test:faults, test:backends), which .ci/run runs too.
    exclude: ["test/browser/**", "test/faults/**", "test/backends/**", "node_modules/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
