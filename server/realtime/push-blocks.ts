import type { AppIo } from './io.js';

/**
 * How many browsers share one of the push's rooms. Browsers join in connection order, so a push
 * to everyone writes to the sockets in the order they were made, as a bare `io.emit` does: in that
 * order each write's objects sit next to each other in memory (BENCHMARKS.md, "The cause").
 */
export const BLOCK = 250;

/**
 * The push's rooms ("blocks"), oldest first, each holding up to BLOCK browsers in connection
 * order. A room the adapter deleted (its last browser left) is dropped at the next walk; churn
 * leaves old blocks thinner, never more than a few times as many as when full.
 */
export class ConnectionOrderBlocks {
  private readonly rooms: string[] = [];
  private open = { room: '', joined: BLOCK };
  private made = 0;

  constructor(private readonly io: AppIo) {}

  /** The room a new browser joins: the newest, until it has had BLOCK browsers. */
  roomToJoin(): string {
    if (this.open.joined >= BLOCK) {
      this.open = { room: `push-block:${this.made++}`, joined: 0 };
      this.rooms.push(this.open.room);
    }
    this.open.joined++;
    return this.open.room;
  }

  /**
   * Visits every block that holds browsers, oldest first, with its size, dropping emptied ones
   * in place. `visit` may await (a turn of the loop): no block is added meanwhile, because
   * browsers register in the same queue as the push that walks.
   */
  async walk(visit: (room: string, size: number) => void | Promise<void>): Promise<void> {
    const { rooms } = this.io.of('/').adapter;
    let kept = 0;
    for (const room of this.rooms) {
      const size = rooms.get(room)?.size;
      if (size === undefined && room !== this.open.room) continue;
      this.rooms[kept++] = room;
      if (size) await visit(room, size);
    }
    this.rooms.length = kept;
  }
}
