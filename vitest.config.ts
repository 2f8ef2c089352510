import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  // The package's own subpath imports, as Node resolves them (package.json "imports"), but to the sources.
  resolve: {
    alias: {
      "#platform": fileURLToPath(new URL("./src/sys/platform-node.ts", import.meta.url)),
      "#backstores": fileURLToPath(new URL("./src/backstore/index.ts", import.meta.url)),
    },
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ["default", "json"],
    outputFile: { json: "test-results.json" },
  },
});
