import { randomUUID } from 'node:crypto';
import { OpenFeature, ProviderEvents, type EventDetails } from '@openfeature/server-sdk';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../server/observability/logger.js';
import {
  changedKeys,
  FlagRepositoryProvider,
  openFeatureLogger,
  valueOrSafeDefault,
} from '../../server/flags/provider.js';
import { followReadiness, sourceName } from '../../server/flags/readiness.js';
import { FlagRepository } from '../../server/flags/repository.js';
import type { FlagdDocument } from '../../server/flags/types.js';
import { capturingLogger } from '../helpers/app.js';
import { MemoryBackend } from '../helpers/memory-backend.js';

const logger = createLogger('silent');
const actor = { source: 'api' as const, name: 'test' };

/** The real repository over a backend in memory, and the provider on it. */
async function providerOn(initial: FlagdDocument, options: { loadFailure?: Error } = {}) {
  const backend = new MemoryBackend(initial);
  backend.loadFailure = options.loadFailure;
  const repository = new FlagRepository(backend, logger, () => initial);
  await repository.start();
  const provider = new FlagRepositoryProvider(repository, logger);
  const changes: unknown[] = [];
  const health: string[] = [];
  provider.events.addHandler(ProviderEvents.ConfigurationChanged, (details) => changes.push(details?.flagsChanged));
  for (const event of [ProviderEvents.Ready, ProviderEvents.Stale, ProviderEvents.Error])
    provider.events.addHandler(event, () => health.push(event));
  return { backend, repository, provider, changes, health };
}

const doc = (overrides: Record<string, unknown> = {}): FlagdDocument => ({
  flags: {
    kill: { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' },
    flavour: { state: 'ENABLED', variants: { a: 'classic', b: 'trending' }, defaultVariant: 'a' },
    limit: { state: 'ENABLED', variants: { low: 1, high: 10 }, defaultVariant: 'high' },
    shape: { state: 'ENABLED', variants: { box: { w: 1 } }, defaultVariant: 'box' },
    ...overrides,
  },
});

describe("the repository provider (the app's flagd engine over the repository)", () => {
  it('evaluates every type from the document it was given at initialize, synchronously on the fast path', async () => {
    const { provider } = await providerOn(doc());
    await provider.initialize();
    expect(provider.resolve('boolean', 'kill', false, {})).toMatchObject({
      value: true,
      variant: 'on',
      reason: 'STATIC',
    });
    expect(await provider.resolveBooleanEvaluation('kill', false, {})).toMatchObject({ value: true });
    expect(await provider.resolveStringEvaluation('flavour', 'x', {})).toMatchObject({ value: 'classic' });
    expect(await provider.resolveNumberEvaluation('limit', 0, {})).toMatchObject({ value: 10 });
    expect(await provider.resolveObjectEvaluation('shape', {}, {})).toMatchObject({ value: { w: 1 } });
    expect(provider.resolve('boolean', 'missing', false, {})).toMatchObject({ errorCode: 'FLAG_NOT_FOUND' });
  });

  it('tells of exactly the keys that changed, as the repository applied them, and of nothing for a write that changes nothing', async () => {
    const { repository, provider, changes } = await providerOn(doc());
    await provider.initialize();
    await repository.update('kill', (current) => ({ ...current, state: 'DISABLED' }), { actor });
    await repository.update('kill', (current) => ({ ...current, state: 'DISABLED' }), { actor });
    expect(changes).toEqual([['kill']]);
    expect(provider.resolve('boolean', 'kill', true, {})).toMatchObject({ value: true, reason: 'DISABLED' });
    expect(provider.versionOf('kill')).toBe(2);
  });

  it('compiles only the changed flag: the others are the very same compiled flags', async () => {
    const { backend, repository, provider, changes } = await providerOn(doc());
    await provider.initialize();
    const engine = (provider as unknown as { engine: { flags: Map<string, unknown> } }).engine;
    const flavourBefore = engine.flags.get('flavour');
    const killBefore = engine.flags.get('kill');
    backend.editOutside(doc({ kill: { state: 'DISABLED', variants: { on: true, off: false }, defaultVariant: 'on' } }));
    await repository.idle();
    expect(changes).toEqual([['kill']]);
    expect(engine.flags.get('flavour')).toBe(flavourBefore);
    expect(engine.flags.get('kill')).not.toBe(killBefore);
  });

  it('a flag removed by an outside edit serves its default as not found; a flag added is served', async () => {
    const { backend, repository, provider, changes } = await providerOn(doc());
    await provider.initialize();
    const { limit: _gone, ...rest } = doc().flags;
    backend.editOutside({ flags: { ...rest, extra: { state: 'ENABLED', variants: { a: 'x' }, defaultVariant: 'a' } } });
    await repository.idle();
    expect((changes[0] as string[]).sort()).toEqual(['extra', 'limit']);
    expect(provider.resolve('number', 'limit', 3, {})).toMatchObject({ value: 3, errorCode: 'FLAG_NOT_FOUND' });
    expect(provider.resolve('string', 'extra', '', {})).toMatchObject({ value: 'x' });
  });

  it("its status is the repository's, told to OpenFeature, whose status readiness reads: an initialize that fails (nothing loaded), then Ready; Stale while the backend is away", async () => {
    const { backend, repository, provider, health } = await providerOn(doc(), {
      loadFailure: new Error('disk on fire'),
    });
    const domain = `test-${randomUUID()}`;
    const readiness = followReadiness(OpenFeature.getClient(domain), sourceName(provider.kind));
    await expect(OpenFeature.setProviderAndWait(domain, provider)).rejects.toThrow('disk on fire');
    expect(readiness()).toEqual({ ready: false, detail: 'disk on fire; serving safe defaults' });
    expect(provider.resolve('boolean', 'kill', false, {})).toMatchObject({ value: false, errorCode: 'FLAG_NOT_FOUND' });
    backend.loadFailure = undefined;
    backend.reconnected();
    await repository.idle();
    expect(provider.resolve('boolean', 'kill', false, {})).toMatchObject({ value: true });
    expect(readiness()).toEqual({ ready: true, detail: 'flags from the file store' });
    backend.unreachable('backend away');
    expect(readiness()).toEqual({ ready: true, detail: 'backend away' });
    backend.reconnected();
    await repository.idle();
    expect(readiness()).toEqual({ ready: true, detail: 'flags from the file store' });
    expect(health).toEqual([ProviderEvents.Ready, ProviderEvents.Stale, ProviderEvents.Ready]);
    await OpenFeature.clearProviders();
  });

  it('stops following the repository once closed (and initializing twice subscribes once)', async () => {
    const { repository, provider, changes } = await providerOn(doc());
    await provider.initialize();
    await provider.initialize();
    await repository.update('flavour', (current) => ({ ...current, defaultVariant: 'b' }), { actor });
    expect(changes).toEqual([['flavour']]);
    await provider.onClose();
    await repository.update('kill', (current) => ({ ...current, state: 'DISABLED' }), { actor });
    expect(changes).toHaveLength(1);
    expect(provider.resolve('boolean', 'kill', false, {})).toMatchObject({ value: true }); // the flags it last had
    // Initialized again (OpenFeature sets a provider again): it follows the repository again.
    await provider.initialize();
    await repository.update('limit', (current) => ({ ...current, defaultVariant: 'low' }), { actor });
    expect(changes).toEqual([['flavour'], ['limit']]);
  });
});

describe('readiness before the flags load, and where they come from', () => {
  it('is not ready while a provider initializes, and names the source in words', async () => {
    const { provider } = await providerOn(doc());
    const domain = `test-${randomUUID()}`;
    const readiness = followReadiness(OpenFeature.getClient(domain), sourceName('redis'));
    expect(readiness()).toEqual({ ready: false, detail: 'flags from the redis store loading' });
    await OpenFeature.setProviderAndWait(domain, provider);
    expect(readiness()).toEqual({ ready: true, detail: 'flags from the redis store' });
    expect(sourceName('launchdarkly')).toBe('LaunchDarkly');
    await OpenFeature.clearProviders();
  });
});

describe('changedKeys', () => {
  it('gives the keys an event names, or every key followed when it names none', () => {
    expect(changedKeys({ flagsChanged: ['a'] } as EventDetails, ['a', 'b'])).toEqual(['a']);
    expect(changedKeys({} as EventDetails, ['a', 'b'])).toEqual(['a', 'b']);
    expect(changedKeys(undefined, ['a'])).toEqual(['a']);
  });
});

describe('valueOrSafeDefault', () => {
  it('gives the value, or the safe default when the resolution failed or gave none', () => {
    expect(valueOrSafeDefault({ value: true }, false)).toBe(true);
    expect(valueOrSafeDefault({ value: true, errorCode: 'GENERAL' as never }, false)).toBe(false);
    expect(valueOrSafeDefault({ value: undefined as unknown as boolean }, false)).toBe(false);
    expect(valueOrSafeDefault({ value: false }, true)).toBe(false); // a false value is a value
  });
});

describe('openFeatureLogger', () => {
  it("passes OpenFeature's messages on one level quieter for info and debug (the SDK is chatty), as they are for errors and warnings", () => {
    const { logger, lines } = capturingLogger('trace');
    const of = openFeatureLogger(logger);
    of.error('e');
    of.warn('w');
    of.info('i');
    of.debug('d');
    const levels = lines
      .map((line) => JSON.parse(line))
      .map((entry: { level: number; msg: string; args: string[] }) => [entry.level, entry.msg, entry.args[0]]);
    expect(levels).toEqual([
      [50, 'openfeature', 'e'],
      [40, 'openfeature', 'w'],
      [20, 'openfeature', 'i'],
      [10, 'openfeature', 'd'],
    ]);
  });
});
