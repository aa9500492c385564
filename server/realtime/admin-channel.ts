import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'socket.io';
import type { SocketCredential } from '../access/auth.js';
import { SESSION_TTL_MS, SESSIONS_PER_TOKEN, type EndedSessions } from '../access/sessions.js';
import type { Principal } from '../access/tokens.js';
import { createStatsSampler } from '../admin/stats.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type {
  AdminState,
  ClientToServerEvents,
  InterServerEvents,
  ServerToClientEvents,
  SocketData,
} from './events.js';
import type { AppIo } from './io.js';

type AppSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

export interface AdminAccess {
  authorize(handshake: {
    auth: Record<string, unknown> | undefined;
    headers: IncomingHttpHeaders;
    address: string;
  }): Promise<SocketCredential | { refused: string }>;
  isCurrent(principal: Principal): boolean;
  /** Tokens changed (one created or revoked, here or on another instance). */
  onChange(listener: () => void): void;
  /** Sessions ended on this instance (signed out, or replaced by their token's newer ones). */
  onSessionsEnded(listener: (ended: EndedSessions) => void): void;
}

const ROOM = 'admin';
/** Each admin session's sockets, on every instance: what its end closes. */
const sessionRoom = (key: string) => `admin-session:${key}`;
/** How often the sockets of sessions are checked for expiry: a socket outlives its session by this at most. */
const EXPIRY_CHECK_MS = 1000;

const ENDED_BECAUSE: Record<EndedSessions['reason'], string> = {
  'signed-out': 'This admin session was signed out: the admin channel is closed.',
  replaced: `This admin session was ended: its token signed in ${SESSIONS_PER_TOKEN} more times since, and a token keeps its ${SESSIONS_PER_TOKEN} newest sessions. Sign in again.`,
};
const EXPIRED = `This admin session expired (sessions last ${SESSION_TTL_MS / 3_600_000} h): sign in again.`;

export interface AdminChannel {
  /** Checks an admin socket's credential at the handshake; refused, the client gets the reason. */
  authorize(socket: AppSocket, next: (error?: Error) => void): void;
  join(socket: AppSocket): void;
  /** Pushes the admin pages' state again (soon, coalesced, after the pushes to browsers queued so far). */
  announceState(): void;
  announceBrowsers: (total: number) => void;
  close(): void;
}

/**
 * The launch-control pages' channel: the "admin" room, joined only with a valid credential (the
 * room carries every flag's targeting and the audit). It gets the dashboard's figures once a
 * second (the history on joining), the state after every change, and `admin_denied` the moment
 * the token it proved is revoked, or the session it was opened with ends (signed out or replaced,
 * on any instance; expired), then it is closed.
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
  /** With Redis: other instances hold sockets of the same sessions. */
  shared: boolean;
  /** The sessions' clock (the session store's). */
  now: () => number;
}): AdminChannel {
  const { io } = deps;
  let closed = false;
  const endSessions = closeSessionSockets(deps);

  closeRevokedSockets(io, deps.access);

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
      deps.access.authorize({ auth: handshake.auth, headers: handshake.headers, address: socket.data.address }).then(
        (result) => {
          if ('refused' in result)
            return next(Object.assign(new Error(result.refused), { data: { reason: 'unauthorized' } }));
          socket.data.principal = result.principal;
          if (result.session) socket.data.session = result.session;
          next();
        },
        (error: unknown) => next(error as Error),
      );
    },
    join(socket) {
      void socket.join(ROOM);
      endSessions.watch(socket);
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
      endSessions.stop();
      clearTimeout(stateTimer);
    },
  };
}

/** A token revoked: the admin sockets that proved it are told why, and closed, at once. */
function closeRevokedSockets(io: AppIo, access: AdminAccess): void {
  access.onChange(() => {
    for (const socket of io.of('/').sockets.values()) {
      const { principal } = socket.data;
      if (!principal || access.isCurrent(principal)) continue;
      socket.emit('admin_denied', {
        message: `The token "${principal.name}" was revoked: the admin channel is closed.`,
      });
      // A server-side disconnect (after the event, in order): the client does not reconnect by itself.
      socket.disconnect();
    }
  });
}

/**
 * Closes the admin sockets of sessions that end: signed out or replaced (told by this instance's
 * store, and passed on to the other instances, whose sockets of the same session it cannot reach
 * otherwise), or expired (checked here). Each is told why first.
 */
function closeSessionSockets(deps: { io: AppIo; access: AdminAccess; shared: boolean; now: () => number }) {
  const { io } = deps;
  const withSession = new Set<AppSocket>();
  const closeHere = (keys: string[], message: string) => {
    const rooms = io.local.in(keys.map(sessionRoom));
    rooms.emit('admin_denied', { message });
    // A server-side disconnect, after the event: the client does not reconnect by itself.
    rooms.disconnectSockets();
  };
  io.on('sessions_ended', closeHere);
  deps.access.onSessionsEnded(({ keys, reason }) => {
    closeHere(keys, ENDED_BECAUSE[reason]);
    if (deps.shared) io.serverSideEmit('sessions_ended', keys, ENDED_BECAUSE[reason]);
  });
  const expiry = setInterval(() => {
    const now = deps.now();
    for (const socket of withSession) {
      if (socket.data.session!.expiresAt > now) continue;
      socket.emit('admin_denied', { message: EXPIRED });
      socket.disconnect();
    }
  }, EXPIRY_CHECK_MS);
  expiry.unref();
  return {
    watch(socket: AppSocket) {
      const { session } = socket.data;
      if (!session) return;
      void socket.join(sessionRoom(session.key));
      withSession.add(socket);
      socket.on('disconnect', () => withSession.delete(socket));
    },
    stop: () => clearInterval(expiry),
  };
}
