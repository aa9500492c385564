import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The process tests run the compiled server (`dist/`), as `npm start` does: built once here.
    globalSetup: ['test/setup/build.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores: two files at a time, each starting its own servers on port 0.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
