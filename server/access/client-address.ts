import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import proxyaddr from 'proxy-addr';

/** Express's compiled `trust proxy` (`app.get('trust proxy fn')`): whether the hop at `address`, `hop` steps back, is a trusted proxy. */
export type TrustProxyFn = (address: string, hop: number) => boolean;

/**
 * The client's address for a Socket.IO handshake, as Express's `req.ip` would have it for the same
 * request: proxy-addr (what Express uses) with Express's own trust function, so that a socket and
 * a request from one client are always counted as one address.
 */
export function handshakeClientAddress(
  handshake: { address: string; headers: IncomingHttpHeaders },
  trust: TrustProxyFn,
): string {
  // proxy-addr reads the peer's address and X-Forwarded-For off a request; the handshake kept both
  // (its request's socket may be gone by now, with a polling transport).
  const request = {
    headers: handshake.headers,
    socket: { remoteAddress: handshake.address },
  } as unknown as IncomingMessage;
  return proxyaddr(request, trust);
}
