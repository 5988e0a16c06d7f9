import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Fails the run at once when dist/ or bundle/ is older than src/ (the CLI suites spawn the built binary), and
    // migrates one template database per server for the suites to clone.
    globalSetup: ['test/setup/global.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // MariaDB suites share one server; keep the parallelism modest on a 2-core machine.
    maxWorkers: 2,
  },
});
