import { randomUUID } from 'node:crypto';
import type { AppIo } from './io.js';

/** A peer's browser count older than this is from an instance that is gone. */
const PEER_TTL_MS = 15_000;

export interface ClusterCount {
  /** Browsers connected across every instance (this one alone without Redis). */
  total: () => number;
  /** This instance's own count changed: tell the peers and the listener (coalesced). */
  changed(): void;
  /** Who hears the total when it may have changed (the admin pages). */
  onTotal: (listener: (total: number) => void) => void;
  close(): void;
}

/**
 * The count of browsers across instances: our own, plus what each peer last said of its own
 * (through the Redis adapter's server-side events), told to the admin pages at most four times a
 * second and on a heartbeat, so that a peer gone quiet drops out of the sum.
 */
export function createClusterCount(deps: {
  io: AppIo;
  own: () => number;
  /** With Redis: peers exist, and hear of our count. */
  shared: boolean;
}): ClusterCount {
  const { io } = deps;
  const instance = randomUUID();
  const peers = new Map<string, { count: number; at: number }>();
  let closed = false;
  let listener: (total: number) => void = () => undefined;
  const total = () => {
    let sum = deps.own();
    for (const [id, peer] of peers) {
      if (Date.now() - peer.at > PEER_TTL_MS) peers.delete(id);
      else sum += peer.count;
    }
    return sum;
  };
  const tellPeers = () => {
    if (deps.shared && !closed) io.serverSideEmit('browsers', instance, deps.own());
  };
  io.on('browsers', (id, count) => {
    peers.set(id, { count, at: Date.now() });
    listener(total());
  });
  const heartbeat = setInterval(() => {
    tellPeers();
    listener(total());
  }, 5000);
  heartbeat.unref();

  let timer: NodeJS.Timeout | undefined;
  return {
    total,
    changed() {
      if (closed) return;
      // At most four times a second, however fast browsers come and go.
      timer ??= setTimeout(() => {
        timer = undefined;
        tellPeers();
        listener(total());
      }, 250);
    },
    onTotal(next) {
      listener = next;
    },
    close() {
      closed = true;
      clearInterval(heartbeat);
      clearTimeout(timer);
    },
  };
}
