import { defineConfig } from "vitest/config"

/**
 * `npm run test:backends`: the conformance suite on every other backend and variant (PostgreSQL durability modes,
 * the embedded engine, and the optional engines), kept out of `npm test` so that it stays quick.
 */
export default defineConfig({
  test: {
    include: ["test/backends/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
