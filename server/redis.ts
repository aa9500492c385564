import { Redis } from 'ioredis';
import { within } from './bounded-wait.js';
import type { Logger } from './observability/logger.js';

/** The one reconnection policy: 100 ms, 200 ms, ... up to 2 s between attempts, forever. */
export const reconnectAfter = (attempt: number): number => Math.min(attempt * 100, 2000);

export interface RedisClientOptions {
  logger: Logger;
  /** Who uses the client, in its log lines ("flags", "access", "socket.io adapter"). */
  name: string;
  /**
   * A subscriber's connection queues its (un)subscriptions until Redis answers. Any other's
   * commands fail at once while Redis is away: a write answers 503 rather than wait in a queue,
   * and nothing is left queued to reject at shutdown.
   */
  subscriber?: boolean;
  /** Connects when first asked to (connectWithin), not when made. */
  lazy?: boolean;
}

/**
 * Every Redis client of the app is made here: one reconnection policy, one way of failing while
 * Redis is away, its errors (repeated at every failed reconnection) logged at debug, since the
 * users of a client say what an outage means for them.
 */
export function createRedisClient(url: string, options: RedisClientOptions): Redis {
  const client = new Redis(url, {
    lazyConnect: options.lazy ?? true,
    retryStrategy: reconnectAfter,
    connectTimeout: 3000,
    ...(options.subscriber ? {} : { enableOfflineQueue: false, maxRetriesPerRequest: 1 }),
  });
  client.on('error', (error) => options.logger.debug({ err: error }, `redis (${options.name}) error`));
  return client;
}

/**
 * Connects a lazy client and resolves true once it is ready, or false after `ms` (it goes on
 * trying in the background, by the reconnection policy). Never rejects: an unreachable Redis is
 * an answer here, not an error.
 */
export async function connectWithin(client: Redis, ms: number): Promise<boolean> {
  if (client.status === 'ready') return true;
  // Not events.once(): it rejects on the 'error' events an unreachable Redis emits.
  const ready = new Promise<boolean>((resolve) => client.once('ready', () => resolve(true)));
  if (client.status === 'wait') void client.connect().catch(() => undefined);
  return (await within(ready, ms)) === true;
}
