import { createAdapter } from '@socket.io/redis-adapter';
import type { Redis } from 'ioredis';
import { createRedisClient } from '../redis.js';
import { Server } from 'socket.io';
import type { Logger } from '../observability/logger.js';
import type { ClientToServerEvents, InterServerEvents, ServerToClientEvents, SocketData } from './events.js';

export type AppIo = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

/** Wraps these methods of a Redis client so that a failure is logged (debug), never unhandled; the caller still gets the promise. */
function catchEveryCall(
  client: Redis,
  methods: ('publish' | 'subscribe' | 'psubscribe' | 'unsubscribe' | 'punsubscribe')[],
  logger: Logger,
): void {
  for (const method of methods) {
    const call = (client[method] as (...args: unknown[]) => Promise<unknown>).bind(client);
    (client as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
      const sent = call(...args);
      sent.catch((error: unknown) => logger.debug({ err: error }, `socket.io redis adapter: ${method} failed`));
      return sent;
    };
  }
}

/**
 * The Socket.IO server, not yet attached to an HTTP server (the composition root attaches it once
 * the app exists). With Redis, its adapter carries what must cross instances (the cluster's
 * browser counts; flag pushes are per instance, each evaluating its own viewers).
 */
export function createIo(deps: { redisUrl?: string | undefined; logger: Logger }): {
  io: AppIo;
  closeAdapter: () => void;
} {
  const io: AppIo = new Server({
    serveClient: true,
    // Off: it costs CPU and memory per socket and defeats the pre-encoded broadcast frame.
    perMessageDeflate: false,
    // Browsers never send anything but protocol packets: keep what they may send tiny.
    maxHttpBufferSize: 2048,
    pingInterval: 10_000,
    pingTimeout: 8_000,
  });
  const clients: Redis[] = [];
  if (deps.redisUrl) {
    const pub = createRedisClient(deps.redisUrl, { logger: deps.logger, name: 'socket.io adapter', lazy: false });
    const sub = createRedisClient(deps.redisUrl, {
      logger: deps.logger,
      name: 'socket.io adapter subscriber',
      subscriber: true,
      lazy: false,
    });
    // The adapter never catches its own commands: a failed publish (while Redis is down), or the
    // (un)subscriptions it sends at start and at close and that a client closing rejects, would
    // each be an unhandled rejection, which stops a Node 20 process. What it publishes here
    // (browser counts) is best effort, and comes again with the next heartbeat; its
    // subscriptions are made again by ioredis on every reconnect.
    catchEveryCall(pub, ['publish'], deps.logger);
    catchEveryCall(sub, ['subscribe', 'psubscribe', 'unsubscribe', 'punsubscribe'], deps.logger);
    clients.push(pub, sub);
    io.adapter(createAdapter(pub, sub, { key: 'killswitch-io' }));
  }
  return {
    io,
    closeAdapter: () => {
      for (const client of clients) client.disconnect();
    },
  };
}
