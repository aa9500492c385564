import type { EvaluationContext, FlagValue, ResolutionDetails } from '@openfeature/server-sdk';
import { setImmediate as nextTurnOfTheLoop } from 'node:timers/promises';
import type { Socket } from 'socket.io';
import { flagCatalog, pageFlagKeys } from '../flags/catalog.js';
import { isContextFree, valueOrSafeDefault, type FlagsProvider } from '../flags/provider.js';
import { SerialQueue } from '../concurrency/serial-queue.js';
import { flipStep } from '../observability/flip-trace.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { RefetchPolicy } from '../feed/refetch-policy.js';
import type {
  ClientToServerEvents,
  FlagUpdate,
  InterServerEvents,
  ServerToClientEvents,
  SocketData,
} from './events.js';
import type { AppIo } from './io.js';
import { ConnectionOrderBlocks } from './push-blocks.js';

type AppSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

/** All the tabs of one viewer: one evaluation serves them all. */
interface ViewerGroup {
  context: EvaluationContext;
  sockets: Set<AppSocket>;
}

/**
 * A push hands this many browsers at most to the sockets before it lets the event loop turn, and
 * only while a page load waits: a flip to 10,000 browsers on one core writes for ~100 ms, which a
 * new viewer's page would otherwise wait behind. Not smaller, and no turn when nobody waits:
 * whatever runs in a turn delays the browsers still to be written (BENCHMARKS.md).
 */
const SLICE = 2500;

/** Who one update goes to: every browser here, or these sockets. */
type Audience = { everyone: true; pages: number } | { everyone: false; ids: string[] };

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
  private readonly blocks: ConnectionOrderBlocks;
  private browsers = 0;
  /**
   * Per key, the value (its JSON) that every registered browser last received, while they all
   * hold the same one; absent once they differ. A kill or a restore of a switch that everyone
   * holds alike then reaches everyone with no walk over the browsers before the first write.
   */
  private readonly uniform = new Map<string, string>();

  constructor(
    private readonly deps: {
      io: AppIo;
      /** Evaluates, and numbers each flag's versions. */
      flags: Pick<FlagsProvider, 'resolve' | 'versionOf'>;
      metrics: Metrics;
      logger: Logger;
      /** Which values make pages refetch their live content, and over what window. */
      refetchPolicy?: RefetchPolicy | undefined;
      /**
       * Whether a request (a page, a fragment) is waiting for an answer: a push lets the loop turn
       * between its slices only then. Without it, it always does.
       */
      requestsWaiting?: () => boolean;
    },
  ) {
    this.blocks = new ConnectionOrderBlocks(deps.io);
  }

  /** The value of one flag for one context; any error gives the flag's safe code default. */
  private async evaluate(key: string, context: EvaluationContext): Promise<ResolutionDetails<FlagValue>> {
    const entry = flagCatalog[key]!;
    try {
      const result = this.deps.flags.resolve(entry.type, key, entry.safeDefault, context);
      const details = result instanceof Promise ? await result : result;
      return { ...details, value: valueOrSafeDefault(details, entry.safeDefault) };
    } catch (error) {
      this.deps.logger.error({ err: error, key }, 'flag evaluation failed; using the safe default');
      return { value: entry.safeDefault, reason: 'ERROR' };
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
      void socket.join(this.blocks.roomToJoin());
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
      flipStep('push turn');
      const stop = this.deps.metrics.pushDuration.startTimer();
      for (const key of relevant) await this.pushKey(key);
      stop();
      flipStep('push done');
    });
  }

  private async pushKey(key: string): Promise<void> {
    const version = this.deps.flags.versionOf(key);
    const firstGroup = this.groups.values().next().value;
    if (!firstGroup) return; // no browser here
    const first = await this.evaluate(key, firstGroup.context);
    flipStep('first evaluation');
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
    await this.send({ key, value, version }, { everyone: true, pages: this.browsers });
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

    for (const { value, ids } of partitions.values()) {
      await this.send(
        { key, value, version },
        ids.length === this.browsers ? { everyone: true, pages: ids.length } : { everyone: false, ids },
      );
    }
    this.deps.logger.debug({ key, version, partitions: partitions.size }, 'flag pushed');
  }

  /** One value's update to its audience, with the refetch window it calls for. */
  private async send(update: Pick<FlagUpdate, 'key' | 'value' | 'version'>, audience: Audience): Promise<void> {
    const pages = audience.everyone ? audience.pages : audience.ids.length;
    const refetchWithinMs = this.deps.refetchPolicy?.windowFor(update.key, update.value, pages);
    // A push that makes pages refetch is sent whole: with turns in between, the pages that got it
    // first would fetch while the rest still wait for it.
    const yieldBetweenSlices = refetchWithinMs === undefined;
    const full: FlagUpdate = refetchWithinMs === undefined ? update : { ...update, refetchWithinMs };
    if (audience.everyone) await this.emitToEveryone(full, yieldBetweenSlices);
    else await this.emitTo(audience.ids, full, yieldBetweenSlices);
    if (audience.everyone) this.deps.refetchPolicy?.reachedEveryone(update.key, update.value);
    this.deps.metrics.flagUpdatesSent.inc({ key: update.key }, pages);
  }

  /** Lets the loop turn between slices, when asked to and a page load is waiting. */
  private async turn(yieldBetweenSlices: boolean): Promise<void> {
    if (yieldBetweenSlices && (this.deps.requestsWaiting?.() ?? true)) await nextTurnOfTheLoop();
  }

  /** Every browser, block by block in connection order: a broadcast each, with no room of N ids to build. */
  private async emitToEveryone(update: FlagUpdate, yieldBetweenSlices: boolean): Promise<void> {
    let sent = 0;
    await this.blocks.walk(async (room, size) => {
      if (sent >= SLICE) {
        sent = 0;
        await this.turn(yieldBetweenSlices);
      }
      this.deps.io.local.to(room).emit('flag_update', update);
      sent += size;
    });
  }

  /** These browsers, SLICE at a time. */
  private async emitTo(ids: string[], update: FlagUpdate, yieldBetweenSlices: boolean): Promise<void> {
    for (let start = 0; start < ids.length; start += SLICE) {
      if (start > 0) await this.turn(yieldBetweenSlices);
      this.deps.io.local.to(ids.slice(start, start + SLICE)).emit('flag_update', update);
    }
  }
}
