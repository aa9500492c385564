import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, Server as HttpServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { ProviderEvents, type EventDetails } from '@openfeature/server-sdk';
import { Server } from 'socket.io';
import { pageFlagKeys } from '../flags/catalog.js';
import type { FlagsProvider } from '../flags/provider.js';
import { evaluationContext, newAnonymousKey, viewerFor, viewerKeyFromCookieHeader } from '../feed/viewer.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { AdminState, ClientToServerEvents, InterServerEvents, RefetchWindow, ServerToClientEvents, SocketData } from './events.js';
import { FlagPusher } from './push.js';
import { createStatsSampler } from '../admin/stats.js';
import type { Principal } from '../access/tokens.js';

export type AppIo = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

export interface AdminAccess {
  authorize(handshake: { auth: Record<string, unknown> | undefined; headers: IncomingHttpHeaders; address: string }): Promise<{ principal: Principal } | { refused: string }>;
  isCurrent(principal: Principal): boolean;
  /** Tokens changed (one created or revoked, here or on another instance). */
  onChange(listener: () => void): void;
}

/** Wraps these methods of a Redis client so that a failure is logged (debug), never unhandled; the caller still gets the promise. */
function catchEveryCall(client: Redis, methods: ('publish' | 'subscribe' | 'psubscribe' | 'unsubscribe' | 'punsubscribe')[], logger: Logger): void {
  for (const method of methods) {
    const call = (client[method] as (...args: unknown[]) => Promise<unknown>).bind(client);
    (client as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
      const sent = call(...args);
      sent.catch((error: unknown) => logger.debug({ err: error }, `socket.io redis adapter: ${method} failed`));
      return sent;
    };
  }
}

/** A peer's browser count older than this is from an instance that is gone. */
const PEER_TTL_MS = 15_000;

export interface Realtime {
  io: AppIo;
  pusher: FlagPusher;
  /** Serves Socket.IO on the app's HTTP server (its requests reach Socket.IO first). */
  attach(httpServer: HttpServer): void;
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
  provider: FlagsProvider;
  metrics: Metrics;
  logger: Logger;
  adminState: (browsers: number) => Promise<AdminState>;
  /** With Redis: the adapter carries what must cross instances (the cluster-wide figures). */
  redisUrl?: string | undefined;
  /** For a value that makes pages refetch their live content: the window they spread over. */
  refetchWindow?: RefetchWindow;
  /** Who may join the admin channel (see access/auth.ts), and when to check again. */
  adminAccess: AdminAccess;
}): Realtime {
  // Attached to the HTTP server later (attach()): the app served beside it needs this first.
  const io: AppIo = new Server({
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
    // The adapter never catches its own commands: a failed publish (while Redis is down), or the
    // (un)subscriptions it sends at start and at close and that a client closing rejects, would
    // each be an unhandled rejection, which stops a Node 20 process. What it publishes here
    // (browser counts) is best effort, and comes again with the next heartbeat; its
    // subscriptions are made again by ioredis on every reconnect.
    catchEveryCall(pub, ['publish'], deps.logger);
    catchEveryCall(sub, ['subscribe', 'psubscribe', 'unsubscribe', 'punsubscribe'], deps.logger);
    for (const client of [pub, sub]) client.on('error', (error) => deps.logger.debug({ err: error }, 'socket.io redis adapter error'));
    redisClients.push(pub, sub);
    io.adapter(createAdapter(pub, sub, { key: 'killswitch-io' }));
  }
  const pusher = new FlagPusher({ io, flags: deps.provider, metrics: deps.metrics, logger: deps.logger, refetchWindow: deps.refetchWindow });

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
    const auth = socket.handshake.auth as Record<string, unknown> | undefined;
    const role = auth?.role === 'admin' ? 'admin' : 'viewer';
    const viewer = viewerFor(viewerKeyFromCookieHeader(socket.handshake.headers.cookie) ?? newAnonymousKey());
    socket.data = { role, viewer, context: evaluationContext(viewer), last: {} };
    if (role === 'viewer') return next();
    // The admin channel carries every flag's targeting and the audit: a valid credential only.
    // Refused, the client gets connect_error with the reason (and does not retry by itself).
    deps.adminAccess.authorize({ auth, headers: socket.handshake.headers, address: socket.handshake.address }).then(
      (result) => {
        if ('refused' in result) return next(Object.assign(new Error(result.refused), { data: { reason: 'unauthorized' } }));
        socket.data.principal = result.principal;
        next();
      },
      (error: unknown) => next(error as Error),
    );
  });

  // A token revoked: the admin sockets that proved it are told why, and closed, at once.
  deps.adminAccess.onChange(() => {
    for (const socket of io.of('/').sockets.values()) {
      const { principal } = socket.data;
      if (!principal || deps.adminAccess.isCurrent(principal)) continue;
      socket.emit('admin_denied', { message: `The token "${principal.name}" was revoked: the admin channel is closed.` });
      // A server-side disconnect (after the event, in order): the client does not reconnect by itself.
      socket.disconnect();
    }
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
    stateTimer ??= setTimeout(() => {
      stateTimer = undefined;
      void (async () => {
        // After the browsers: a push to 10,000 of them lets the loop turn between slices, and the
        // admin pages' state must not be what those turns spend their time on.
        await pusher.idle();
        if (closed) return; // shut down meanwhile: the state's sources may be closed
        io.local.to('admin').emit('admin_state', await deps.adminState(clusterBrowsers()));
      })().catch((error: unknown) => deps.logger.warn({ err: error }, 'could not announce the admin state'));
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
  deps.provider.events.addHandler(ProviderEvents.ConfigurationChanged, onConfigurationChanged);

  return {
    io,
    pusher,
    attach(httpServer) {
      io.attach(httpServer);
    },
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
      deps.provider.events.removeHandler(ProviderEvents.ConfigurationChanged, onConfigurationChanged);
      await new Promise<void>((resolve) => void io.close(() => resolve()));
      for (const client of redisClients) client.disconnect();
    },
  };
}
