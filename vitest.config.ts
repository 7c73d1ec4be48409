import { defineConfig } from 'vitest/config';

// Two projects: unit tests need nothing running; integration tests (`*.int.test.ts`) run against the
// real Kafka broker and ClickHouse that `deploy/local/vitest-global-setup.ts` brings up (or reuses) via deploy/local.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{ingest,aggregator,schemas,runtime,bench,deploy}/**/*.test.ts'],
          exclude: ['**/*.int.test.ts', 'node_modules/**', '.local/**', 'dist/**'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['{ingest,aggregator,schemas,runtime,bench,deploy}/**/*.int.test.ts'],
          exclude: ['node_modules/**', '.local/**', 'dist/**'],
          globalSetup: ['deploy/local/vitest-global-setup.ts'],
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
