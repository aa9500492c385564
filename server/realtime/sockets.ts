import type { Server as HttpServer } from 'node:http';
import { handshakeClientAddress, type TrustProxyFn } from '../access/client-address.js';
import { evaluationContext, newAnonymousKey, viewerFor, viewerKeyFromCookieHeader } from '../feed/viewer.js';
import type { FlagsProvider } from '../flags/provider.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { createAdminChannel, type AdminAccess, type AdminChannel } from './admin-channel.js';
import { createClusterCount } from './cluster-count.js';
import type { RefetchPolicy } from '../feed/refetch-policy.js';
import type { AdminState } from './events.js';
import { createIo, type AppIo } from './io.js';
import { FlagPusher } from './push.js';
import { countReadsInProgress } from './reads-in-progress.js';
import { createSocketCap } from './socket-cap.js';
import { createViewerChannel, type ViewerChannel } from './viewer-channel.js';

/** What a socket's client address is computed from. */
type Handshake = Parameters<typeof handshakeClientAddress>[0];

export interface Realtime {
  io: AppIo;
  pusher: FlagPusher;
  /**
   * Serves Socket.IO on the app's HTTP server (its requests reach Socket.IO first), with the
   * app's own trust function (`app.get('trust proxy fn')`) for each socket's client address.
   */
  attach(httpServer: HttpServer, trustProxy: TrustProxyFn): void;
  /** Browsers connected across every instance (this one alone without Redis). */
  clusterBrowsers(): number;
  /** Pushes the admin page's state again (soon, coalesced). */
  announceAdminState(): void;
  /** Tells every browser to reconnect elsewhere (the transport closes; their client retries). */
  disconnectAll(): void;
  close(): Promise<void>;
}

/**
 * Socket.IO for the app, made of three parts: the viewer channel (feed pages and their per-viewer
 * pushes), the admin channel (launch-control pages, with a credential), and the cluster's count of
 * browsers. The handshake reads the same viewer cookie as the page and builds the same evaluation
 * context; a socket without one is an anonymous viewer of its own. Browsers send nothing the
 * server listens to.
 */
export function createRealtime(deps: {
  provider: FlagsProvider;
  metrics: Metrics;
  logger: Logger;
  adminState: (browsers: number) => Promise<AdminState>;
  /** With Redis: the adapter carries what must cross instances (the cluster-wide figures). */
  redisUrl?: string | undefined;
  /** Which values make pages refetch their live content, and over what window. */
  refetchPolicy?: RefetchPolicy;
  /** Who may join the admin channel (see access/auth.ts), and when to check again. */
  adminAccess: AdminAccess;
  /** Connections from one client address on this instance; 0: no cap. */
  maxSocketsPerAddress: number;
  /** The admin sessions' clock (the session store's). */
  now?: () => number;
}): Realtime {
  const { io, closeAdapter } = createIo({ redisUrl: deps.redisUrl, logger: deps.logger });
  // Until attached, no request can wait.
  let readsInProgress = () => 0;
  const pusher = new FlagPusher({
    io,
    flags: deps.provider,
    metrics: deps.metrics,
    logger: deps.logger,
    refetchPolicy: deps.refetchPolicy,
    requestsWaiting: () => readsInProgress() > 0,
  });
  const cluster = createClusterCount({ io, own: () => pusher.browserCount, shared: deps.redisUrl !== undefined });
  const admin = createAdminChannel({
    io,
    access: deps.adminAccess,
    adminState: deps.adminState,
    browsers: cluster.total,
    pushesDone: () => pusher.idle(),
    metrics: deps.metrics,
    logger: deps.logger,
    shared: deps.redisUrl !== undefined,
    now: deps.now ?? Date.now,
  });
  cluster.onTotal(admin.announceBrowsers);
  const viewers = createViewerChannel({
    pusher,
    provider: deps.provider,
    logger: deps.logger,
    onCountChange: () => cluster.changed(),
    onFlagsChanged: () => admin.announceState(),
  });

  // Until attached, no socket can arrive.
  let trustProxy: TrustProxyFn = () => false;
  const clientAddress = (handshake: Handshake) => handshakeClientAddress(handshake, trustProxy);
  admitSockets(io, { admin, viewers, maxSocketsPerAddress: deps.maxSocketsPerAddress, clientAddress });

  return {
    io,
    pusher,
    attach(httpServer, trust) {
      trustProxy = trust;
      io.attach(httpServer);
      readsInProgress = countReadsInProgress(httpServer, `${io.path()}/`);
    },
    clusterBrowsers: () => cluster.total(),
    announceAdminState: () => admin.announceState(),
    disconnectAll() {
      // Closing the transport (not a server-side disconnect) makes the clients reconnect by themselves.
      for (const socket of io.of('/').sockets.values()) socket.conn.close();
    },
    async close() {
      viewers.close();
      admin.close();
      cluster.close();
      await new Promise<void>((resolve) => void io.close(() => resolve()));
      closeAdapter();
    },
  };
}

/**
 * Each handshake in turn: who it is (a viewer, or an admin with a credential), from which client
 * address, then whether that address has room; on connection, the socket joins its channel, and
 * holds its place under the cap until it leaves.
 */
function admitSockets(
  io: AppIo,
  deps: {
    admin: AdminChannel;
    viewers: ViewerChannel;
    maxSocketsPerAddress: number;
    clientAddress: (handshake: Handshake) => string;
  },
): void {
  const { admin, viewers } = deps;
  const cap = createSocketCap(deps.maxSocketsPerAddress);
  io.use((socket, next) => {
    const { handshake } = socket;
    const auth = handshake.auth as Record<string, unknown> | undefined;
    const role = auth?.role === 'admin' ? 'admin' : 'viewer';
    const viewer = viewerFor(viewerKeyFromCookieHeader(handshake.headers.cookie) ?? newAnonymousKey());
    socket.data = {
      role,
      address: deps.clientAddress(handshake),
      viewer,
      context: evaluationContext(viewer),
      last: {},
    };
    if (role === 'viewer') next();
    else admin.authorize(socket, next);
  });
  // Last: Socket.IO connects an admitted socket on the same turn of the loop (a nextTick later), so
  // none gets in past the cap, and a socket refused for its credential takes no place.
  io.use((socket, next) => {
    if (cap.admits(socket.data.address)) return next();
    next(
      Object.assign(
        new Error(
          `Too many connections from this address (${deps.maxSocketsPerAddress} at most): close some tabs, or try again later.`,
        ),
        { data: { reason: 'too_many_connections' } },
      ),
    );
  });
  io.on('connection', (socket) => {
    // The viewer context is taken; the stored handshake request is ~KBs a socket we never read.
    (socket.conn as unknown as { request: unknown }).request = null;
    const { address } = socket.data;
    cap.opened(address);
    socket.on('disconnect', () => cap.closed(address));
    if (socket.data.role === 'admin') admin.join(socket);
    else viewers.join(socket);
  });
}
