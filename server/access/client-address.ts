import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import ipaddr from 'ipaddr.js';
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

/**
 * What a limit per client address counts: the address, or for IPv6 its /56, the block one
 * customer is usually given (one person could otherwise take a new address per request). An
 * IPv4 address seen through an IPv6 socket (`::ffff:192.0.2.1`) counts as itself.
 */
export function addressKey(address: string): string {
  if (!ipaddr.IPv6.isValid(address)) return address; // IPv4, or not an address at all: as it is
  const ip = ipaddr.IPv6.parse(address);
  if (ip.isIPv4MappedAddress()) return ip.toIPv4Address().toString();
  const [a = 0, b = 0, c = 0, d = 0] = ip.parts;
  return `${new ipaddr.IPv6([a, b, c, d & 0xff00, 0, 0, 0, 0]).toString()}/56`;
}
