import { ProviderEvents, type EventDetails } from '@openfeature/server-sdk';
import { LOG_LEVEL } from './catalog.js';
import { changedKeys, type FlagsProvider } from './provider.js';
import type { Logger } from '../observability/logger.js';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
/** The server evaluates its own flags as this context. */
export const SERVER_CONTEXT = { targetingKey: 'server', name: 'server' };

/**
 * Keeps the logger's level on the `log-level` flag, live. A disabled, missing or broken flag
 * (or a value that is not a level) leaves the level from LOG_LEVEL in the environment.
 */
export function followLogLevelFlag(provider: FlagsProvider, logger: Logger, configured: string): () => void {
  const apply = async () => {
    const details = await provider.resolve('string', LOG_LEVEL, configured, SERVER_CONTEXT);
    const wanted = details.errorCode || details.reason === 'DISABLED' ? configured : String(details.value);
    const level = LEVELS.includes(wanted) ? wanted : configured;
    if (logger.level !== level) {
      logger.info({ from: logger.level, to: level }, 'log level changed by the log-level flag');
      logger.level = level;
    }
  };
  const onChange = (details?: EventDetails) => {
    if (changedKeys(details, [LOG_LEVEL]).includes(LOG_LEVEL)) void apply();
  };
  provider.events.addHandler(ProviderEvents.ConfigurationChanged, onChange);
  void apply();
  return () => provider.events.removeHandler(ProviderEvents.ConfigurationChanged, onChange);
}
