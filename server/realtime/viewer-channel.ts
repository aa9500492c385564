import { ProviderEvents, type EventDetails } from '@openfeature/server-sdk';
import { flipStep } from '../observability/flip-trace.js';
import type { Socket } from 'socket.io';
import { pageFlagKeys } from '../flags/catalog.js';
import { changedKeys, type FlagsProvider } from '../flags/provider.js';
import type { Logger } from '../observability/logger.js';
import type { ClientToServerEvents, InterServerEvents, ServerToClientEvents, SocketData } from './events.js';
import type { FlagPusher } from './push.js';

type AppSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

export interface ViewerChannel {
  join(socket: AppSocket): void;
  close(): void;
}

/**
 * The feed pages' channel: each page is registered with the pusher (which sends its snapshot),
 * and every change the provider tells of goes to the pusher, which sends each page the value
 * evaluated for its own viewer, only when it changed.
 */
export function createViewerChannel(deps: {
  pusher: FlagPusher;
  provider: FlagsProvider;
  logger: Logger;
  /** A page came or went. */
  onCountChange: () => void;
  /** A flag changed (after its push is queued). */
  onFlagsChanged: () => void;
}): ViewerChannel {
  const { pusher } = deps;
  const onConfigurationChanged = (details?: EventDetails) => {
    flipStep('event heard');
    pusher
      .flagsChanged(changedKeys(details, pageFlagKeys))
      .catch((error: unknown) => deps.logger.error({ err: error }, 'flag push failed'));
    deps.onFlagsChanged();
  };
  deps.provider.events.addHandler(ProviderEvents.ConfigurationChanged, onConfigurationChanged);
  return {
    join(socket) {
      pusher.register(socket).then(deps.onCountChange, (error: unknown) => {
        deps.logger.error({ err: error }, 'could not register a browser');
      });
      socket.on('disconnect', () => {
        pusher.unregister(socket);
        deps.onCountChange();
      });
    },
    close() {
      deps.provider.events.removeHandler(ProviderEvents.ConfigurationChanged, onConfigurationChanged);
    },
  };
}
