import { randomUUID } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { ProviderEvents, type EventDetails } from '@openfeature/server-sdk';
import { Server } from 'socket.io';
import { pageFlagKeys } from '../flags/catalog.js';
import type { FlagSource } from '../flags/source.js';
import { evaluationContext, newAnonymousKey, viewerFor, viewerKeyFromCookieHeader } from '../feed/viewer.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { AdminState, ClientToServerEvents, InterServerEvents, RefetchWindow, ServerToClientEvents, SocketData } from './events.js';
import { FlagPusher } from './push.js';
import { createStatsSampler } from '../admin/stats.js';

export type AppIo = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

/** A peer's browser count older than this is from an instance that is gone. */
const PEER_TTL_MS = 15_000;

export interface Realtime {
  io: AppIo;
  pusher: FlagPusher;
  /** Browsers connected across every instance (this one alone without Redis). */
  clusterBrowsers(): number;
  /** Pushes the admin page's state again (soon, coalesced). */
  announceAdminState(): void;
  /** Tells every browser to reconnect elsewhere (the transport closes; their client retries). */
  disconnectAll(): void;
  close(): Promise<void>;
}

/**
 * Socket.IO on the app's HTTP server. The handshake reads the same viewer cookie as the page
 * and builds the same evaluation context; a socket without one is an anonymous viewer of its own.
 * Feed pages are registered with the pusher; the admin page (auth.role = "admin") joins the
 * "admin" room for the live figures. Browsers send nothing the server listens to.
 */
export function createRealtime(deps: {
  httpServer: HttpServer;
  source: FlagSource;
  metrics: Metrics;
  logger: Logger;
  adminState: (browsers: number) => Promise<AdminState>;
  /** With Redis: the adapter carries what must cross instances (the cluster-wide figures). */
  redisUrl?: string | undefined;
  /** For a value that makes pages refetch their live content: the window they spread over. */
  refetchWindow?: RefetchWindow;
}): Realtime {
  const io: AppIo = new Server(deps.httpServer, {
    serveClient: true,
    // Off: it costs CPU and memory per socket and defeats the pre-encoded broadcast frame.
    perMessageDeflate: false,
    // Browsers never send anything but protocol packets: keep what they may send tiny.
    maxHttpBufferSize: 2048,
    pingInterval: 10_000,
    pingTimeout: 8_000,
  });
  const redisClients: Redis[] = [];
  if (deps.redisUrl) {
    const pub = new Redis(deps.redisUrl, { retryStrategy: (times) => Math.min(times * 100, 2000), enableOfflineQueue: false });
    const sub = new Redis(deps.redisUrl, { retryStrategy: (times) => Math.min(times * 100, 2000) });
    // The adapter never catches a failed publish: while Redis is down (or the client closing),
    // each one would be an unhandled rejection, which stops a Node 20 process. What it publishes
    // here (browser counts) is best effort, and comes again with the next heartbeat.
    const publish = pub.publish.bind(pub);
    pub.publish = ((...args: Parameters<typeof publish>) => {
      const sent = publish(...args);
      sent.catch((error: unknown) => deps.logger.debug({ err: error }, 'socket.io redis adapter: publish failed'));
      return sent;
    }) as typeof pub.publish;
    for (const client of [pub, sub]) client.on('error', (error) => deps.logger.debug({ err: error }, 'socket.io redis adapter error'));
    redisClients.push(pub, sub);
    io.adapter(createAdapter(pub, sub, { key: 'killswitch-io' }));
  }
  const pusher = new FlagPusher({ io, source: deps.source, metrics: deps.metrics, logger: deps.logger, refetchWindow: deps.refetchWindow });

  // Browsers across every instance: our own count plus what each peer last said of its own.
  const instance = randomUUID();
  const peers = new Map<string, { count: number; at: number }>();
  const clusterBrowsers = () => {
    let total = pusher.browserCount;
    for (const [id, peer] of peers) {
      if (Date.now() - peer.at > PEER_TTL_MS) peers.delete(id);
      else total += peer.count;
    }
    return total;
  };
  io.on('browsers', (id, count) => {
    peers.set(id, { count, at: Date.now() });
    io.local.to('admin').emit('admin_browsers', clusterBrowsers());
  });
  let closed = false;
  const tellPeers = () => {
    if (deps.redisUrl && !closed) io.serverSideEmit('browsers', instance, pusher.browserCount);
  };
  const heartbeat = setInterval(() => {
    tellPeers();
    io.local.to('admin').emit('admin_browsers', clusterBrowsers());
  }, 5000);
  heartbeat.unref();

  io.use((socket, next) => {
    const role = (socket.handshake.auth as { role?: unknown } | undefined)?.role === 'admin' ? 'admin' : 'viewer';
    const viewer = viewerFor(viewerKeyFromCookieHeader(socket.handshake.headers.cookie) ?? newAnonymousKey());
    socket.data = { role, viewer, context: evaluationContext(viewer), last: {} };
    next();
  });

  let browsersTimer: NodeJS.Timeout | undefined;
  const announceBrowsers = () => {
    if (closed) return;
    // At most four times a second, however fast browsers come and go.
    browsersTimer ??= setTimeout(() => {
      browsersTimer = undefined;
      tellPeers();
      io.local.to('admin').emit('admin_browsers', clusterBrowsers());
    }, 250);
  };

  let stateTimer: NodeJS.Timeout | undefined;
  const announceAdminState = () => {
    stateTimer ??= setTimeout(async () => {
      stateTimer = undefined;
      io.local.to('admin').emit('admin_state', await deps.adminState(clusterBrowsers()));
    }, 20);
  };

  // The dashboard's figures, once a second, to the admin pages; the history to each one that joins.
  const sampler = createStatsSampler({
    metrics: deps.metrics,
    browsers: () => clusterBrowsers(),
    onSample: (sample) => io.local.to('admin').emit('admin_stats', [sample]),
  });

  io.on('connection', (socket) => {
    // The viewer context is taken; the stored handshake request is ~KBs a socket we never read.
    (socket.conn as unknown as { request: unknown }).request = null;
    if (socket.data.role === 'admin') {
      void socket.join('admin');
      socket.emit('admin_stats', sampler.history());
      void deps.adminState(clusterBrowsers()).then((state) => socket.emit('admin_state', state));
      return;
    }
    pusher.register(socket).then(announceBrowsers, (error: unknown) => {
      deps.logger.error({ err: error }, 'could not register a browser');
    });
    socket.on('disconnect', () => {
      pusher.unregister(socket);
      announceBrowsers();
    });
  });

  const onConfigurationChanged = (details?: EventDetails) => {
    const changed = details?.flagsChanged;
    const keys = Array.isArray(changed) ? (changed as string[]) : pageFlagKeys;
    pusher.flagsChanged(keys).catch((error: unknown) => deps.logger.error({ err: error }, 'flag push failed'));
    announceAdminState();
  };
  deps.source.provider.events.addHandler(ProviderEvents.ConfigurationChanged, onConfigurationChanged);

  return {
    io,
    pusher,
    announceAdminState,
    disconnectAll() {
      // Closing the transport (not a server-side disconnect) makes the clients reconnect by themselves.
      for (const socket of io.of('/').sockets.values()) socket.conn.close();
    },
    clusterBrowsers,
    async close() {
      closed = true;
      sampler.stop();
      clearInterval(heartbeat);
      clearTimeout(browsersTimer);
      clearTimeout(stateTimer);
      deps.source.provider.events.removeHandler(ProviderEvents.ConfigurationChanged, onConfigurationChanged);
      await new Promise<void>((resolve) => void io.close(() => resolve()));
      for (const client of redisClients) client.disconnect();
    },
  };
}
