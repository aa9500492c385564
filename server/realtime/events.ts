import type { EvaluationContext, FlagValue } from '@openfeature/server-sdk';
import type { AdminState, FlagSnapshot, FlagUpdate, StatsSample } from '../../protocol/wire.js';
import type { Principal } from '../access/tokens.js';
import type { Viewer } from '../feed/viewer.js';

/** The wire's payloads are typed once, in protocol/wire.js, for the server and the pages. */
export type { AdminState, FlagUpdate };

export interface ServerToClientEvents {
  admin_stats: (samples: StatsSample[]) => void;
  flag_snapshot: (values: FlagSnapshot) => void;
  flag_update: (update: FlagUpdate) => void;
  admin_state: (state: AdminState) => void;
  admin_browsers: (count: number) => void;
  /** The admin channel's credential is no longer valid (its token revoked, its session ended): why, then the socket is closed. */
  admin_denied: (info: { message: string }) => void;
}

/** Between instances (through the Redis adapter): each one's count of browsers; admin sessions ended (their keys, and why). */
export interface InterServerEvents {
  browsers: (instance: string, count: number) => void;
  sessions_ended: (keys: string[], message: string) => void;
}

/** Empty on purpose: browsers cannot change anything over Socket.IO. */
export type ClientToServerEvents = Record<string, never>;

export interface SocketData {
  role: 'viewer' | 'admin';
  /** The client's address, as `req.ip` has it for the same client (see access/client-address.ts). */
  address: string;
  /** For an admin socket: the token it proved (checked again whenever tokens change). */
  principal?: Principal;
  /** For an admin socket opened with the admin page's session: which one (its store key), and when it expires. */
  session?: { key: string; expiresAt: number };
  viewer: Viewer;
  context: EvaluationContext;
  /** What this browser last received for each flag; a push goes out only when it differs. */
  last: Record<string, FlagValue>;
}
