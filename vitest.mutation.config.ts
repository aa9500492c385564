import { defineConfig } from 'vitest/config';

/**
 * The tests a mutation run uses (`npm run test:mutation`, stryker.config.json): the ones that run
 * the mutated modules in this process. Not the tests that start the compiled `dist/` (process,
 * process faults, cluster fault, simulator: `dist/` does not carry Stryker's mutants), nor the
 * Chromium, Redis-instance, LaunchDarkly, API-fuzz and access ones (access spawns the token CLI):
 * too slow to run for each of over a thousand mutants on two cores, and the modules mutated are
 * covered without them. The access modules' own tests are
 * in: the token command runs in-process (access/token-command.ts), and the unit tests that need
 * Redis start one redis-server per file, a few tens of milliseconds.
 */
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts'],
    exclude: [
      'test/integration/process.test.ts',
      'test/integration/process-faults.test.ts',
      'test/integration/cluster-fault.test.ts',
      'test/integration/ramp-cluster.test.ts',
      'test/integration/simulator-knobs.test.ts',
      'test/integration/store-faults.test.ts',
      'test/integration/redis.test.ts',
      'test/integration/launchdarkly.test.ts',
      'test/integration/admin-surface.test.ts',
      'test/integration/access.test.ts',
    ],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    maxWorkers: 1,
    reporters: ['default'],
  },
});
