import { defineConfig } from 'vitest/config';

// Two projects: unit tests need nothing running; integration tests (`*.int.test.ts`) run against the
// real Kafka broker and ClickHouse that `testing/vitest-global-setup.ts` brings up (or reuses) via stack/.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{ingest,aggregator,dashboard,schemas,runtime,rights,demo,stack,testing,tools,bench}/**/*.test.ts'],
          exclude: ['**/*.int.test.ts', 'node_modules/**', '.local/**', 'dist/**'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['{ingest,aggregator,dashboard,schemas,runtime,rights,demo,stack,testing,tools,bench}/**/*.int.test.ts'],
          exclude: ['node_modules/**', '.local/**', 'dist/**'],
          globalSetup: ['testing/vitest-global-setup.ts'],
          // Deletes each file's topics and databases after the file (testing/README.md, "Cleaning up").
          setupFiles: ['testing/vitest-file-cleanup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // Integration suites share one broker and one ClickHouse on a 2-core machine; running them
          // one file at a time keeps timings stable and fault tests (which stop services) isolated.
          fileParallelism: false,
        },
      },
    ],
  },
});
