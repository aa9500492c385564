import type { Server as HttpServer } from 'node:http';
import { ProviderEvents, type EventDetails } from '@openfeature/server-sdk';
import { Server } from 'socket.io';
import { pageFlagKeys } from '../flags/catalog.js';
import type { FlagSource } from '../flags/source.js';
import { evaluationContext, newAnonymousKey, viewerFor, viewerKeyFromCookieHeader } from '../feed/viewer.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { AdminState, ClientToServerEvents, ServerToClientEvents, SocketData } from './events.js';
import { FlagPusher } from './push.js';

export type AppIo = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export interface Realtime {
  io: AppIo;
  pusher: FlagPusher;
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
  const pusher = new FlagPusher({ io, source: deps.source, metrics: deps.metrics, logger: deps.logger });

  io.use((socket, next) => {
    const role = (socket.handshake.auth as { role?: unknown } | undefined)?.role === 'admin' ? 'admin' : 'viewer';
    const viewer = viewerFor(viewerKeyFromCookieHeader(socket.handshake.headers.cookie) ?? newAnonymousKey());
    socket.data = { role, viewer, context: evaluationContext(viewer), last: {} };
    next();
  });

  let browsersTimer: NodeJS.Timeout | undefined;
  const announceBrowsers = () => {
    // At most four times a second, however fast browsers come and go.
    browsersTimer ??= setTimeout(() => {
      browsersTimer = undefined;
      io.local.to('admin').emit('admin_browsers', pusher.browserCount);
    }, 250);
  };

  let stateTimer: NodeJS.Timeout | undefined;
  const announceAdminState = () => {
    stateTimer ??= setTimeout(async () => {
      stateTimer = undefined;
      io.local.to('admin').emit('admin_state', await deps.adminState(pusher.browserCount));
    }, 20);
  };

  io.on('connection', (socket) => {
    // The viewer context is taken; the stored handshake request is ~KBs a socket we never read.
    (socket.conn as unknown as { request: unknown }).request = null;
    if (socket.data.role === 'admin') {
      void socket.join('admin');
      void deps.adminState(pusher.browserCount).then((state) => socket.emit('admin_state', state));
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
    async close() {
      clearTimeout(browsersTimer);
      clearTimeout(stateTimer);
      deps.source.provider.events.removeHandler(ProviderEvents.ConfigurationChanged, onConfigurationChanged);
      await new Promise<void>((resolve) => void io.close(() => resolve()));
    },
  };
}
