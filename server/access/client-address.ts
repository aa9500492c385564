import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { isIPv6 } from 'node:net';
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

/** An IPv6 address's 8 groups of 16 bits (`::` expanded, an embedded IPv4 address as two groups). */
function ipv6Groups(address: string): number[] {
  const [head = '', tail] = address.split('::');
  const groupsOf = (text: string) =>
    text === ''
      ? []
      : text.split(':').flatMap((group) => {
          if (!group.includes('.')) return [parseInt(group, 16)];
          const [a = 0, b = 0, c = 0, d = 0] = group.split('.').map(Number);
          return [(a << 8) | b, (c << 8) | d];
        });
  const front = groupsOf(head);
  const back = tail === undefined ? [] : groupsOf(tail);
  return [...front, ...Array<number>(8 - front.length - back.length).fill(0), ...back];
}

/**
 * What a limit per client address counts: the address, or for IPv6 its /56, the block one
 * customer is usually given (one person could otherwise take a new address per request). An
 * IPv4 address seen through an IPv6 socket (`::ffff:192.0.2.1`) counts as itself.
 */
export function addressKey(address: string): string {
  if (!isIPv6(address)) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  const [a = 0, b = 0, c = 0, d = 0] = ipv6Groups(address);
  return `${[a, b, c, d & 0xff00].map((group) => group.toString(16)).join(':')}::/56`;
}
