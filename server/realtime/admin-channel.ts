import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'socket.io';
import type { Principal } from '../access/tokens.js';
import { createStatsSampler } from '../admin/stats.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { AdminState, ClientToServerEvents, InterServerEvents, ServerToClientEvents, SocketData } from './events.js';
import type { AppIo } from './io.js';

type AppSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

export interface AdminAccess {
  authorize(handshake: { auth: Record<string, unknown> | undefined; headers: IncomingHttpHeaders; address: string }): Promise<{ principal: Principal } | { refused: string }>;
  isCurrent(principal: Principal): boolean;
  /** Tokens changed (one created or revoked, here or on another instance). */
  onChange(listener: () => void): void;
}

const ROOM = 'admin';

export interface AdminChannel {
  /** Checks an admin socket's credential at the handshake; refused, the client gets the reason. */
  authorize(socket: AppSocket, next: (error?: Error) => void): void;
  join(socket: AppSocket): void;
  /** Pushes the admin pages' state again (soon, coalesced, after the pushes to browsers queued so far). */
  announceState(): void;
  announceBrowsers(total: number): void;
  close(): void;
}

/**
 * The launch-control pages' channel: the "admin" room, joined only with a valid credential (the
 * room carries every flag's targeting and the audit). It gets the dashboard's figures once a
 * second (the history on joining), the state after every change, and `admin_denied` the moment
 * the token it proved is revoked.
 */
export function createAdminChannel(deps: {
  io: AppIo;
  access: AdminAccess;
  adminState: (browsers: number) => Promise<AdminState>;
  browsers: () => number;
  /** Resolves once the browsers have been told of what changed (see FlagPusher.idle). */
  pushesDone: () => Promise<void>;
  metrics: Metrics;
  logger: Logger;
}): AdminChannel {
  const { io } = deps;
  let closed = false;

  // A token revoked: the admin sockets that proved it are told why, and closed, at once.
  deps.access.onChange(() => {
    for (const socket of io.of('/').sockets.values()) {
      const { principal } = socket.data;
      if (!principal || deps.access.isCurrent(principal)) continue;
      socket.emit('admin_denied', { message: `The token "${principal.name}" was revoked: the admin channel is closed.` });
      // A server-side disconnect (after the event, in order): the client does not reconnect by itself.
      socket.disconnect();
    }
  });

  // The dashboard's figures, once a second, to the admin pages; the history to each one that joins.
  const sampler = createStatsSampler({
    metrics: deps.metrics,
    browsers: deps.browsers,
    onSample: (sample) => io.local.to(ROOM).emit('admin_stats', [sample]),
  });

  let stateTimer: NodeJS.Timeout | undefined;
  return {
    authorize(socket, next) {
      const { handshake } = socket;
      deps.access.authorize({ auth: handshake.auth as Record<string, unknown> | undefined, headers: handshake.headers, address: handshake.address }).then(
        (result) => {
          if ('refused' in result) return next(Object.assign(new Error(result.refused), { data: { reason: 'unauthorized' } }));
          socket.data.principal = result.principal;
          next();
        },
        (error: unknown) => next(error as Error),
      );
    },
    join(socket) {
      void socket.join(ROOM);
      socket.emit('admin_stats', sampler.history());
      void deps.adminState(deps.browsers()).then((state) => socket.emit('admin_state', state));
    },
    announceState() {
      stateTimer ??= setTimeout(() => {
        stateTimer = undefined;
        void (async () => {
          // After the browsers: a push to 10,000 of them lets the loop turn between slices, and the
          // admin pages' state must not be what those turns spend their time on.
          await deps.pushesDone();
          if (closed) return; // shut down meanwhile: the state's sources may be closed
          io.local.to(ROOM).emit('admin_state', await deps.adminState(deps.browsers()));
        })().catch((error: unknown) => deps.logger.warn({ err: error }, 'could not announce the admin state'));
      }, 20);
    },
    announceBrowsers(total) {
      io.local.to(ROOM).emit('admin_browsers', total);
    },
    close() {
      closed = true;
      sampler.stop();
      clearTimeout(stateTimer);
    },
  };
}
