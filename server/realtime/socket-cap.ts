import { addressKey } from '../access/client-address.js';

/**
 * Socket.IO connections per client address on this instance: each holds ~22 KB, so one address
 * must not hold thousands. Generous (an office shares one address); 0 means no cap. Counted on
 * connection and disconnection, so a refused handshake never takes a place. An IPv6 client is
 * counted by its /56 (`addressKey`), as in every limit per address.
 */
export interface SocketCap {
  /** Whether one more connection from this address fits. */
  admits(address: string): boolean;
  opened(address: string): void;
  closed(address: string): void;
}

export function createSocketCap(max: number): SocketCap {
  const open = new Map<string, number>();
  return {
    admits: (address) => max === 0 || (open.get(addressKey(address)) ?? 0) < max,
    opened(address) {
      const key = addressKey(address);
      open.set(key, (open.get(key) ?? 0) + 1);
    },
    closed(address) {
      const key = addressKey(address);
      const left = (open.get(key) ?? 1) - 1;
      if (left > 0) open.set(key, left);
      else open.delete(key);
    },
  };
}
