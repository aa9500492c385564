import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores: two files at a time, each starting its own servers on port 0.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
