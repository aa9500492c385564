import { ProviderEvents, ProviderStatus, type Client, type EventDetails } from '@openfeature/server-sdk';

export interface Readiness {
  ready: boolean;
  detail: string;
}

/**
 * Readiness, read from OpenFeature's own status of the provider and the reason the provider last
 * gave: ready when its flags are current or stale (the last known flags serve), not while they
 * load nor after they could not be loaded (every flag then serves its safe default).
 */
export function followReadiness(client: Client, source: string): () => Readiness {
  let reason: string | undefined;
  const remember = (details?: EventDetails) => {
    reason = details?.message;
  };
  client.addHandler(ProviderEvents.Error, remember);
  client.addHandler(ProviderEvents.Stale, remember);
  client.addHandler(ProviderEvents.Ready, () => {
    reason = undefined;
  });
  return () => {
    switch (client.providerStatus) {
      case ProviderStatus.READY:
        return { ready: true, detail: `flags from ${source}` };
      case ProviderStatus.STALE:
        return { ready: true, detail: reason ?? `flags from ${source} may be stale` };
      case ProviderStatus.NOT_READY:
        return { ready: false, detail: `flags from ${source} loading` };
      default:
        return { ready: false, detail: `${reason ?? `flags from ${source} unavailable`}; serving safe defaults` };
    }
  };
}

/** Where the flags come from, in the words readiness and the admin page use. */
export const sourceName = (kind: 'file' | 'redis' | 'launchdarkly') =>
  kind === 'launchdarkly' ? 'LaunchDarkly' : `the ${kind} store`;
