import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: [],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    sequence: { concurrent: false },
    reporters: ["default"]
  }
})
