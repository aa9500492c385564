import { ProviderEvents } from '@openfeature/server-sdk';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../server/observability/logger.js';
import { FlagStoreProvider, openFeatureLogger, valueOrSafeDefault } from '../../server/flags/provider.js';
import type { FlagStore } from '../../server/flags/store.js';
import type { FlagdDocument } from '../../server/flags/types.js';
import { capturingLogger } from '../helpers/app.js';

/** A store the test drives: its document, and the listeners it would tell of a change. */
function fakeStore(initial: FlagdDocument) {
  let document = initial;
  const listeners = new Set<() => void>();
  const store = {
    document: () => document,
    onChange(listener: () => void) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  } as unknown as FlagStore;
  return {
    store,
    listeners,
    change(next: FlagdDocument) {
      document = next;
      for (const listener of listeners) listener();
    },
  };
}

const doc = (overrides: Record<string, unknown> = {}): FlagdDocument =>
  ({
    flags: {
      kill: { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' },
      flavour: { state: 'ENABLED', variants: { a: 'classic', b: 'trending' }, defaultVariant: 'a' },
      limit: { state: 'ENABLED', variants: { low: 1, high: 10 }, defaultVariant: 'high' },
      shape: { state: 'ENABLED', variants: { box: { w: 1 } }, defaultVariant: 'box' },
      ...overrides,
    },
  }) as FlagdDocument;

describe('the flag-store provider (flagd-core over the store\'s document)', () => {
  it('evaluates every type from the document it was given at initialize, synchronously on the fast path', async () => {
    const { store } = fakeStore(doc());
    const provider = new FlagStoreProvider(store, createLogger('silent'));
    await provider.initialize();
    expect(provider.resolve('boolean', 'kill', false, {})).toMatchObject({ value: true, variant: 'on', reason: 'STATIC' });
    expect(await provider.resolveBooleanEvaluation('kill', false, {})).toMatchObject({ value: true });
    expect(await provider.resolveStringEvaluation('flavour', 'x', {})).toMatchObject({ value: 'classic' });
    expect(await provider.resolveNumberEvaluation('limit', 0, {})).toMatchObject({ value: 10 });
    expect(await provider.resolveObjectEvaluation('shape', {}, {})).toMatchObject({ value: { w: 1 } });
    expect(provider.resolve('boolean', 'missing', false, {})).toMatchObject({ errorCode: 'FLAG_NOT_FOUND' });
  });

  it('tells of exactly the keys that changed, and of nothing when the document says the same again', async () => {
    const { store, change } = fakeStore(doc());
    const provider = new FlagStoreProvider(store, createLogger('silent'));
    await provider.initialize();
    const events: unknown[] = [];
    provider.events.addHandler(ProviderEvents.ConfigurationChanged, (details) => events.push(details?.flagsChanged));
    change(doc({ kill: { state: 'DISABLED', variants: { on: true, off: false }, defaultVariant: 'on' } }));
    change(doc({ kill: { state: 'DISABLED', variants: { on: true, off: false }, defaultVariant: 'on' } }));
    await new Promise((resolve) => setImmediate(resolve)); // the emitter hands events on asynchronously
    expect(events).toEqual([['kill']]);
    expect(provider.resolve('boolean', 'kill', true, {})).toMatchObject({ value: true, reason: 'DISABLED' });
  });

  it('stops listening to the store once closed (and initializing twice subscribes once)', async () => {
    const { store, listeners, change } = fakeStore(doc());
    const provider = new FlagStoreProvider(store, createLogger('silent'));
    await provider.initialize();
    await provider.initialize();
    expect(listeners.size).toBe(1);
    await provider.onClose();
    expect(listeners.size).toBe(0);
    change(doc({ kill: { state: 'DISABLED', variants: { on: true, off: false }, defaultVariant: 'on' } }));
    expect(provider.resolve('boolean', 'kill', false, {})).toMatchObject({ value: true }); // the old document still
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
  it('passes OpenFeature\'s messages on one level quieter for info and debug (the SDK is chatty), as they are for errors and warnings', () => {
    const { logger, lines } = capturingLogger('trace');
    const of = openFeatureLogger(logger);
    of.error('e');
    of.warn('w');
    of.info('i');
    of.debug('d');
    const levels = lines.map((line) => JSON.parse(line)).map((entry: { level: number; args: string[] }) => [entry.level, entry.args[0]]);
    expect(levels).toEqual([[50, 'e'], [40, 'w'], [20, 'i'], [10, 'd']]);
  });
});
