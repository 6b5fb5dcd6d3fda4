import { defineConfig } from "vitest/config"

/** `npm run test:browser`: the demo in headless Chromium (needs Debian's chromium at /usr/bin/chromium). */
export default defineConfig({
  test: {
    include: ["test/browser/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000
  }
})
