import type { EvaluationContext, FlagValue, ResolutionDetails } from '@openfeature/server-sdk';
import { setImmediate as nextTurnOfTheLoop } from 'node:timers/promises';
import type { Server, Socket } from 'socket.io';
import { flagCatalog, pageFlagKeys } from '../flags/catalog.js';
import { isContextFree, valueOrSafeDefault, type FlagsProvider } from '../flags/provider.js';
import { SerialQueue } from '../concurrency/serial-queue.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ClientToServerEvents, InterServerEvents, RefetchWindow, ServerToClientEvents, SocketData } from './events.js';

type AppServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
type AppSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

/** All the tabs of one viewer: one evaluation serves them all. */
interface ViewerGroup {
  context: EvaluationContext;
  sockets: Set<AppSocket>;
}

/**
 * A push hands this many browsers at most to the sockets before it lets the event loop turn, while
 * page loads are waiting: a flip to 10,000 browsers on one core writes for ~100 ms, and a page load
 * arriving meanwhile (a new viewer during a kill) would wait for all of it. Between slices, it
 * waits for one slice at most. Not smaller: whatever runs in between (the write's own completion,
 * the audit, the admin page's state) delays the browsers of the next slice. With a turn every 1,000
 * browsers, before any emit too, a flip reached 2,000 browsers at p99 1.69x a bare broadcast (1.09x
 * without). With no page load waiting, the loop does not turn: each turn puts that work before
 * the last browsers, for nobody (10,000 browsers: the last write 20-50 ms later).
 */
const SLICE = 2500;
/**
 * Browsers join the push's rooms in connection order, this many to a room ("blocks"), so that a
 * push to all writes to the sockets in the order they were made, as a bare `io.emit` does. Spread
 * round-robin over 64 rooms instead, the same writes to 10,000 sockets on one core took 139-149 ms
 * against 77-87 ms in order (blocks) and 62-101 ms for a bare `io.emit`: each socket's write walks a
 * dozen objects, and in connection order they sit next to each other in memory.
 */
const BLOCK = 250;
/** Whether a browser that last received `a` holds `b`: by identity, or by content for a JSON value. */
export function sameValue(a: FlagValue | undefined, b: FlagValue): boolean {
  if (a === b) return true;
  return typeof b === 'object' && b !== null && JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The per-viewer push. On a change of some flags, each changed key the page uses is evaluated
 * once per distinct viewer (or once for all, when the result cannot depend on the viewer), each
 * socket's new value is compared with what that socket last received, and the sockets whose
 * value really changed are partitioned by their new value. Each partition gets one
 * `io.local.to(ids).emit(...)`: Socket.IO encodes the packet once per distinct value, which
 * costs what a bare broadcast costs, instead of one encoding per socket.
 */
export class FlagPusher {
  private readonly groups = new Map<string, ViewerGroup>();
  // A hung evaluation (a provider that never answers) must not hold every new browser's snapshot.
  private readonly queue = new SerialQueue({ deadlineMs: 10_000 });
  private readonly keys = pageFlagKeys;
  /**
   * The push's rooms, oldest first, each holding up to BLOCK browsers in connection order. A
   * room the adapter deleted (its last browser left) is dropped at the next push. Churn leaves
   * old blocks thinner, never more than a few times as many as when full: one broadcast a block.
   */
  private readonly blocks: string[] = [];
  private openBlock = { room: '', joined: BLOCK };
  private blocksMade = 0;
  private browsers = 0;
  /**
   * Per key, the value (its JSON) that every registered browser last received, while they all
   * hold the same one; absent once they differ. A kill or a restore of a switch that everyone
   * holds the same way then reaches everyone with no walk over the browsers before the first
   * write: 10,000 of them took 4-19 ms on one core, before the first browser got anything.
   */
  private readonly uniform = new Map<string, string>();

  constructor(
    private readonly deps: {
      io: AppServer;
      /** Evaluates, and numbers each flag's versions. */
      flags: Pick<FlagsProvider, 'resolve' | 'versionOf'>;
      metrics: Metrics;
      logger: Logger;
      /** For a value that makes pages refetch their live content: the window they spread over. */
      refetchWindow?: RefetchWindow | undefined;
      /**
       * Whether a request (a page, a fragment) is waiting for an answer: a push lets the loop turn
       * between its slices only then. Without it, it always does.
       */
      requestsWaiting?: () => boolean;
    },
  ) {}

  /** The value of one flag for one context; any error gives the flag's safe code default. */
  private async evaluate(key: string, context: EvaluationContext): Promise<ResolutionDetails<FlagValue>> {
    const entry = flagCatalog[key]!;
    try {
      const result = this.deps.flags.resolve(entry.type, key, entry.safeDefault as FlagValue, context);
      const details = result instanceof Promise ? await result : result;
      return { ...details, value: valueOrSafeDefault(details, entry.safeDefault) };
    } catch (error) {
      this.deps.logger.error({ err: error, key }, 'flag evaluation failed; using the safe default');
      return { value: entry.safeDefault as FlagValue, reason: 'ERROR' };
    }
  }

  /**
   * Registers a browser and sends it the snapshot of every flag the page uses. Queued with the
   * pushes, so a snapshot and a push never interleave: a browser gets a push only for a change
   * made after its snapshot.
   */
  register(socket: AppSocket): Promise<void> {
    return this.queue.run(async () => {
      const { viewer, context } = socket.data;
      const snapshot: Record<string, FlagValue> = {};
      for (const key of this.keys) snapshot[key] = (await this.evaluate(key, context)).value;
      if (socket.disconnected) return; // gone while we evaluated: unregister already ran
      socket.data.last = snapshot;
      let group = this.groups.get(viewer.key);
      if (!group) this.groups.set(viewer.key, (group = { context, sockets: new Set() }));
      group.sockets.add(socket);
      void socket.join(this.blockToJoin());
      for (const key of this.keys) {
        const id = JSON.stringify(snapshot[key]);
        if (this.browsers === 0) this.uniform.set(key, id);
        else if (this.uniform.get(key) !== id) this.uniform.delete(key);
      }
      this.browsers++;
      this.deps.metrics.connectedBrowsers.inc();
      socket.emit('flag_snapshot', snapshot);
    });
  }

  unregister(socket: AppSocket): void {
    const group = this.groups.get(socket.data.viewer.key);
    if (!group?.sockets.delete(socket)) return;
    this.browsers--;
    this.deps.metrics.connectedBrowsers.dec();
    if (group.sockets.size === 0) this.groups.delete(socket.data.viewer.key);
  }

  /** The block a new browser joins: the newest, until it has had BLOCK browsers. */
  private blockToJoin(): string {
    if (this.openBlock.joined >= BLOCK) {
      this.openBlock = { room: `block:${this.blocksMade++}`, joined: 0 };
      this.blocks.push(this.openBlock.room);
    }
    this.openBlock.joined++;
    return this.openBlock.room;
  }

  /** Resolves once every push and snapshot queued so far has been handed to the sockets. */
  idle(): Promise<void> {
    return this.queue.run(async () => undefined);
  }

  /** Browsers connected to this instance. */
  get browserCount(): number {
    return this.browsers;
  }

  /** Pushes the changed keys that the page uses. Changes are pushed one after another, in order. */
  flagsChanged(keys: readonly string[]): Promise<void> {
    const relevant = keys.filter((key) => this.keys.includes(key));
    if (relevant.length === 0) return Promise.resolve();
    return this.queue.run(async () => {
      const stop = this.deps.metrics.pushDuration.startTimer();
      for (const key of relevant) await this.pushKey(key);
      stop();
    });
  }

  private async pushKey(key: string): Promise<void> {
    const version = this.deps.flags.versionOf(key);
    const firstGroup = this.groups.values().next().value as ViewerGroup | undefined;
    if (!firstGroup) return; // no browser here
    const first = await this.evaluate(key, firstGroup.context);
    if (isContextFree(first)) {
      const id = JSON.stringify(first.value);
      const held = this.uniform.get(key);
      if (held === id) return; // every browser holds this value already
      if (held !== undefined) return this.pushToEveryone(key, first.value, id, version);
    }
    await this.pushPerViewer(key, first, version);
  }

  /** Every browser holds another value than `value`, the same for all: each gets it, sent first, recorded after. */
  private async pushToEveryone(key: string, value: FlagValue, id: string, version: number): Promise<void> {
    const everyone = this.browsers;
    await this.send(key, value, version, undefined, everyone, true);
    // Nothing reads what a browser last received until this push is done (snapshots and pushes
    // wait in the queue): recording it after the writes keeps the walk off the flip's path.
    for (const group of this.groups.values()) for (const socket of group.sockets) socket.data.last[key] = value;
    this.uniform.set(key, id);
  }

  /**
   * Each distinct viewer evaluated (once for all when the value cannot depend on the viewer), each
   * browser compared with what it last received, and the browsers that change partitioned by value.
   */
  private async pushPerViewer(key: string, first: ResolutionDetails<FlagValue>, version: number): Promise<void> {
    const partitions = new Map<string, { value: FlagValue; ids: string[] }>();
    const shared = isContextFree(first) ? first.value : undefined;
    // The last value's partition is at hand: values shared by many viewers are encoded once.
    let last: { value: FlagValue; ids: string[] } | undefined;
    const partitionOf = (value: FlagValue) => {
      if (last && last.value === value) return last;
      const id = JSON.stringify(value);
      last = partitions.get(id);
      if (!last) partitions.set(id, (last = { value, ids: [] }));
      return last;
    };
    // Whether every browser ends with one value (then the next push to all may skip this walk).
    let common: string | undefined;
    let uniform = true;

    let evaluated = 0;
    for (const group of this.groups.values()) {
      let value: FlagValue;
      if (shared !== undefined) {
        value = shared;
      } else if (evaluated === 0) {
        value = first.value;
        evaluated++;
      } else {
        // Evaluating 10,000 viewers (through a remote provider's promises) can take long: let
        // requests in between. A value shared by all costs nothing, and lets nothing in first.
        if (++evaluated % SLICE === 0) await nextTurnOfTheLoop();
        value = (await this.evaluate(key, group.context)).value;
      }
      if (shared === undefined && uniform) {
        const id = JSON.stringify(value);
        if (common === undefined) common = id;
        else if (common !== id) uniform = false;
      }
      // The partition is the group's (one value for all its tabs), found once for them.
      let partition: { value: FlagValue; ids: string[] } | undefined;
      for (const socket of group.sockets) {
        if (sameValue(socket.data.last[key], value)) continue;
        socket.data.last[key] = value;
        partition ??= partitionOf(value);
        partition.ids.push(socket.id);
      }
    }
    // `common` is set when nothing was shared: there is a group at least (pushKey returned otherwise).
    if (shared !== undefined) this.uniform.set(key, JSON.stringify(shared));
    else if (uniform) this.uniform.set(key, common!);
    else this.uniform.delete(key);

    const everyone = this.browsers;
    for (const { value, ids } of partitions.values()) await this.send(key, value, version, ids, ids.length, ids.length === everyone);
    this.deps.logger.debug({ key, version, partitions: partitions.size }, 'flag pushed');
  }

  /** One value's update to `ids` (to every browser when `all`), with the refetch window it calls for. */
  private async send(key: string, value: FlagValue, version: number, ids: string[] | undefined, pages: number, all: boolean): Promise<void> {
    const refetchWithinMs = this.deps.refetchWindow?.(key, value, pages, all);
    const update = refetchWithinMs === undefined ? { key, value, version } : { key, value, version, refetchWithinMs };
    // A push that makes pages refetch is sent whole: let the loop turn in between and the pages
    // that got it first would fetch while the rest still wait for it (measured: +60 % at 2,000).
    await this.emitInSlices(all ? undefined : ids, update, refetchWithinMs === undefined);
    this.deps.metrics.flagUpdatesSent.inc({ key }, pages);
  }

  /**
   * Sends one update to `ids` (or to every browser), SLICE browsers at a time, letting the loop
   * turn in between when `yieldBetween` and a request is waiting. Every browser changing to the
   * same value (a kill, a restore) is reached block by block, in connection order: a broadcast
   * each, with no room set of N socket ids to build and walk.
   */
  private async emitInSlices(ids: string[] | undefined, update: Parameters<ServerToClientEvents['flag_update']>[0], yieldBetween: boolean): Promise<void> {
    const { io } = this.deps;
    const turn = async () => {
      if (yieldBetween && (this.deps.requestsWaiting?.() ?? true)) await nextTurnOfTheLoop();
    };
    if (ids === undefined) {
      const { rooms } = io.of('/').adapter;
      let sent = 0;
      // Emptied blocks are dropped in place as the walk passes them. No block is added during the
      // walk's turns: registrations wait in the same queue as this push.
      let kept = 0;
      for (const room of this.blocks) {
        const size = rooms.get(room)?.size;
        if (size === undefined && room !== this.openBlock.room) continue; // emptied: dropped below
        this.blocks[kept++] = room;
        if (!size) continue;
        if (sent >= SLICE) {
          sent = 0;
          await turn();
        }
        io.local.to(room).emit('flag_update', update);
        sent += size;
      }
      this.blocks.length = kept;
      return;
    }
    for (let start = 0; start < ids.length; start += SLICE) {
      if (start > 0) await turn();
      io.local.to(ids.slice(start, start + SLICE)).emit('flag_update', update);
    }
  }
}
