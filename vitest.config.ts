import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The browser test and the fault-injection suite have scripts of their own (test:browser, test:faults).
    exclude: ["test/browser/**", "test/faults/**", "node_modules/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
