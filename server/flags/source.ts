import type { Logger } from '../observability/logger.js';
import type { EvaluatingProvider } from './provider.js';
import { FlagStoreProvider } from './provider.js';
import type { FlagStore } from './store.js';

/**
 * Where the app's flags come from: a provider to evaluate them, and, when they are ours to
 * change, the store behind it. LaunchDarkly is a source without a store (flipped in its own
 * dashboard); the embedded file and Redis are sources with one.
 */
export interface FlagSource {
  readonly kind: 'file' | 'redis' | 'launchdarkly';
  readonly provider: EvaluatingProvider;
  /** Absent when the flags are read-only here. */
  readonly store: FlagStore | undefined;
  /** The version pushed with flag_update; it grows with every change of the flag. */
  versionOf(key: string): number;
  readiness(): { ready: boolean; detail: string };
  start(): Promise<void>;
  close(): Promise<void>;
}

export function createStoreFlagSource(store: FlagStore, logger: Logger): FlagSource {
  const provider = new FlagStoreProvider(store, logger);
  let started = false;
  return {
    kind: store.kind,
    provider,
    store,
    versionOf: (key) => store.get(key)?.version ?? 0,
    readiness() {
      if (!started) return { ready: false, detail: 'flag store loading' };
      const status = store.status();
      return status.healthy
        ? { ready: true, detail: `flags from ${store.kind} store` }
        : { ready: false, detail: `flag store unhealthy: ${status.problem}; serving safe defaults` };
    },
    async start() {
      await store.start();
      started = true;
    },
    async close() {
      await store.close();
    },
  };
}
