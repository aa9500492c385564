/**
 * Evaluations per second: the push path (the provider's own resolve) against the OpenFeature
 * client (what a page render uses), for a static flag, a per-viewer list and a rollout.
 *   npx tsx bench/evaluate.ts
 */
import { OpenFeature } from '@openfeature/server-sdk';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileBackend } from '../server/flags/backend-file.js';
import { FlagRepositoryProvider } from '../server/flags/provider.js';
import { FlagRepository } from '../server/flags/repository.js';
import type { FlagdDocument } from '../server/flags/types.js';
import { createLogger } from '../server/observability/logger.js';

const viewers = Array.from({ length: 500 }, (_, i) => ({
  targetingKey: `user-${i}`,
  name: `User ${i}`,
  groups: i % 2 ? ['beta'] : [],
}));
const document = {
  flags: {
    static: { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' },
    listed: {
      state: 'ENABLED',
      variants: { on: true, off: false },
      defaultVariant: 'on',
      targeting: {
        if: [
          { in: [{ var: 'targetingKey' }, viewers.filter((_, i) => i % 2).map((v) => v.targetingKey)] },
          'off',
          null,
        ],
      },
    },
    rollout: {
      state: 'ENABLED',
      variants: { on: true, off: false },
      defaultVariant: 'on',
      targeting: {
        fractional: [
          ['on', 50],
          ['off', 50],
        ],
      },
    },
  },
};
const dir = await mkdtemp(path.join(tmpdir(), 'evaluate-'));
const logger = createLogger('silent');
const repository = new FlagRepository(
  new FileBackend({ file: path.join(dir, 'flags.json'), logger }),
  logger,
  () => document as FlagdDocument,
);
await repository.start();
const provider = new FlagRepositoryProvider(repository, logger);
await OpenFeature.setProviderAndWait('bench', provider);
const client = OpenFeature.getClient('bench');

async function measure(label: string, run: (i: number) => unknown, iterations: number) {
  for (let i = 0; i < 2000; i++) await run(i); // warm up
  const rounds: number[] = [];
  for (let round = 0; round < 5; round++) {
    const start = performance.now();
    for (let i = 0; i < iterations; i++) await run(i);
    rounds.push(performance.now() - start);
  }
  rounds.sort((a, b) => a - b);
  const median = rounds[2]!;
  return { label, perSecond: Math.round((iterations / median) * 1000), microseconds: (median * 1000) / iterations };
}

const results = [];
for (const key of ['static', 'listed', 'rollout']) {
  results.push(
    await measure(
      `provider.resolve  ${key}`,
      (i) => provider.resolve('boolean', key, false, viewers[i % 500]!),
      100_000,
    ),
  );
  results.push(
    await measure(`OpenFeature client ${key}`, (i) => client.getBooleanValue(key, false, viewers[i % 500]), 20_000),
  );
}
for (const r of results)
  console.log(`${r.label.padEnd(28)} ${String(r.perSecond).padStart(10)} /s  ${r.microseconds.toFixed(2)} µs`);
await OpenFeature.close();
await repository.close();
await rm(dir, { recursive: true, force: true });
