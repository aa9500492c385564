import { ProviderEvents, type EvaluationContext } from '@openfeature/server-sdk';
import { describe, expect, it, vi } from 'vitest';
import { QueueDeadlineError } from '../../server/concurrency/serial-queue.js';
import { defaultFlagDocument, KILL_SWITCH, LOG_LEVEL, RECS_FLAVOUR, THEME } from '../../server/flags/catalog.js';
import { FlagRepositoryProvider, type FlagsProvider } from '../../server/flags/provider.js';
import { FlagRepository } from '../../server/flags/repository.js';
import { createLogger } from '../../server/observability/logger.js';
import { createMetrics } from '../../server/observability/metrics.js';
import { FlagPusher, sameValue } from '../../server/realtime/push.js';
import { MemoryBackend } from '../helpers/memory-backend.js';

/**
 * The push without sockets: Socket.IO's rooms and emits in memory (every socket is in a room of
 * its own id, as in Socket.IO; `to([])` and `to` no room at all reach every socket, as in
 * Socket.IO; rooms live in the `/` namespace's adapter), and the real repository and provider over
 * a backend in memory.
 */
interface HarnessOptions {
  requestsWaiting?: () => boolean;
  /** false: the pusher is given no refetch policy. */
  refetchPolicy?: false;
  /** Runs before each evaluation: it may throw (the evaluation fails), hang, or close a socket. */
  onEvaluate?: (key: string, context: EvaluationContext) => void | Promise<void>;
}

async function harness(options: HarnessOptions = {}) {
  const repository = new FlagRepository(
    new MemoryBackend(defaultFlagDocument()),
    createLogger('silent'),
    defaultFlagDocument,
  );
  await repository.start();
  const provider = new FlagRepositoryProvider(repository, createLogger('silent'));
  await provider.initialize();
  let evaluations = 0;
  const counting: Pick<FlagsProvider, 'resolve' | 'versionOf'> = {
    resolve: (type, key, defaultValue, context) => {
      evaluations++;
      const before = options.onEvaluate?.(key, context);
      return before instanceof Promise
        ? before.then(() => provider.resolve(type, key, defaultValue, context))
        : provider.resolve(type, key, defaultValue, context);
    },
    versionOf: (key) => provider.versionOf(key),
  };

  const rooms = new Map<string, Set<string>>();
  const sockets = new Map<string, FakeSocket>();
  /** Every emit, in order: which event, to how many sockets. */
  const emits: { event: string; to: number }[] = [];
  /** At each flag_update emit: how many browsers were already recorded as holding its value. */
  const recordedAtEmit: number[] = [];
  const deliver = (targets: string[], event: string, payload: unknown) => {
    const ids =
      targets.length === 0
        ? new Set([...sockets.values()].filter((socket) => !socket.disconnected).map((socket) => socket.id))
        : new Set(targets.flatMap((target) => [...(rooms.get(target) ?? [])]));
    emits.push({ event, to: ids.size });
    if (event === 'flag_update' && ids.size > 0) {
      const { key, value } = payload as { key: string; value: unknown };
      recordedAtEmit.push(
        [...sockets.values()].filter((socket) => !socket.disconnected && socket.data.last[key] === value).length,
      );
    }
    for (const id of ids) sockets.get(id)?.received.push({ event, payload });
  };
  const io = {
    local: {
      to: (target: string | string[]) => ({
        emit: (event: string, payload: unknown) => deliver([target].flat(), event, payload),
      }),
    },
    of: (name: string) => ({ adapter: { rooms: name === '/' ? rooms : new Map() } }),
  };
  const windows: unknown[][] = [];
  /** Every value the pusher said had reached every browser. */
  const reached: unknown[][] = [];
  /** What the pusher logged, parsed (it logs at debug). */
  const logs: Record<string, unknown>[] = [];
  const metrics = createMetrics({ collectDefaults: false });
  const pusher = new FlagPusher({
    io: io as never,
    flags: counting,
    metrics,
    logger: createLogger('debug', {
      write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>),
    }),
    refetchPolicy:
      options.refetchPolicy === false
        ? undefined
        : {
            windowFor: (key, value, pages) => {
              windows.push([key, value, pages]);
              return key === KILL_SWITCH && value === true ? 5000 : undefined;
            },
            reachedEveryone: (key, value) => void reached.push([key, value]),
          },
    ...(options.requestsWaiting ? { requestsWaiting: options.requestsWaiting } : {}),
  });

  interface FakeSocket {
    id: string;
    disconnected: boolean;
    data: { viewer: { key: string }; context: EvaluationContext; last: Record<string, unknown> };
    received: { event: string; payload: unknown }[];
    join(room: string): void;
    emit(event: string, payload: unknown): void;
  }
  let nextId = 0;
  /** A browser of `viewer` connects; resolves once the pusher has registered it (or given up). */
  function connect(viewer: string, groups: string[] = []): { socket: FakeSocket; registered: Promise<void> } {
    const id = `s${nextId++}`;
    const socket: FakeSocket = {
      id,
      disconnected: false,
      data: { viewer: { key: viewer }, context: { targetingKey: viewer, groups }, last: {} },
      received: [],
      join: (room) => void (rooms.get(room) ?? rooms.set(room, new Set()).get(room)!).add(id),
      emit: (event, payload) => socket.received.push({ event, payload }),
    };
    socket.join(id);
    sockets.set(id, socket);
    return { socket, registered: pusher.register(socket as never) };
  }
  async function open(viewer: string, groups: string[] = []): Promise<FakeSocket> {
    const { socket, registered } = connect(viewer, groups);
    await registered;
    return socket;
  }
  /** A browser disconnects, as Socket.IO does it: out of every room, then the pusher hears of it. */
  function close(socket: FakeSocket) {
    socket.disconnected = true;
    for (const [room, members] of rooms) if (members.delete(socket.id) && members.size === 0) rooms.delete(room);
    pusher.unregister(socket as never);
  }
  const socketsOf = (viewer: string) => [...sockets.values()].filter((socket) => socket.data.viewer.key === viewer);
  // As in sockets.ts: the provider's changes go to the pusher.
  provider.events.addHandler(
    ProviderEvents.ConfigurationChanged,
    (details) => void pusher.flagsChanged((details?.flagsChanged as string[]) ?? []),
  );
  /** Writes one flag, as the API would, and waits until its push has been handed to the sockets. */
  async function change(key: string, patch: Record<string, unknown>) {
    await repository.update(key, (current) => ({ ...current, ...patch }), { actor: { source: 'api', name: 'test' } });
    await pusher.idle();
  }
  const updates = (socket: FakeSocket) =>
    socket.received.filter((r) => r.event === 'flag_update').map((r) => r.payload);
  const sentTotal = () => emits.filter((e) => e.event === 'flag_update').reduce((sum, e) => sum + e.to, 0);
  /** A metric's values, as Prometheus would scrape them. */
  const metric = async (name: 'flagUpdatesSent' | 'connectedBrowsers') => (await metrics[name].get()).values;
  /** How many pushes the push-duration histogram has timed. */
  const pushesTimed = async () =>
    (await metrics.pushDuration.get()).values.find((v) => v.metricName === 'flag_push_duration_seconds_count')?.value;
  return {
    provider,
    pusher,
    connect,
    open,
    close,
    socketsOf,
    change,
    updates,
    emits,
    sentTotal,
    windows,
    reached,
    recordedAtEmit,
    logs,
    metric,
    pushesTimed,
    evaluations: () => evaluations,
  };
}

describe('the per-viewer push, without sockets', () => {
  it("sends each browser the snapshot of the page's flags, evaluated for its viewer", async () => {
    const h = await harness();
    const maya = await h.open('maya', ['beta']);
    const sam = await h.open('sam');
    const snapshot = (socket: typeof maya) =>
      socket.received.find((r) => r.event === 'flag_snapshot')!.payload as Record<string, unknown>;
    expect(Object.keys(snapshot(maya)).sort()).toEqual([KILL_SWITCH, RECS_FLAVOUR, THEME].sort());
    expect(snapshot(maya)[RECS_FLAVOUR]).toBe('friends'); // beta gets friends
    expect(snapshot(sam)[KILL_SWITCH]).toBe(true);
    expect(h.pusher.browserCount).toBe(2);
  });

  it('a kill reaches every browser once, with one evaluation for all; the same value again sends nothing', async () => {
    const h = await harness();
    const tabs = await Promise.all(['a', 'b', 'c', 'c'].map((viewer) => h.open(viewer)));
    const before = h.evaluations();
    await h.change(KILL_SWITCH, { state: 'DISABLED' });
    expect(h.evaluations() - before).toBe(1); // DISABLED cannot depend on the viewer
    // No refetch window for a kill: the update carries no such field at all.
    for (const tab of tabs) expect(h.updates(tab)).toStrictEqual([{ key: KILL_SWITCH, value: false, version: 2 }]);
    expect(h.windows).toEqual([[KILL_SWITCH, false, 4]]);
    expect(h.reached).toEqual([[KILL_SWITCH, false]]);
    expect(await h.metric('flagUpdatesSent')).toEqual([
      expect.objectContaining({ labels: { key: KILL_SWITCH }, value: 4 }),
    ]);
    await h.change(KILL_SWITCH, { state: 'DISABLED', defaultVariant: 'off' });
    for (const tab of tabs) expect(h.updates(tab)).toHaveLength(1);
  });

  it('a kill or restore of a switch every browser holds alike is written before any browser is walked; one held apart is walked first', async () => {
    const h = await harness();
    const tabs = await Promise.all(['a', 'b', 'c'].map((viewer) => h.open(viewer)));
    await h.change(KILL_SWITCH, { state: 'DISABLED' });
    await h.change(KILL_SWITCH, { state: 'ENABLED' });
    // Sent first, recorded after: no browser was recorded as holding the value when it went out
    // (one emit per block of browsers: the three share one).
    expect(h.recordedAtEmit).toEqual([0, 0]);
    // Recorded all the same: the same value again sends nothing.
    await h.change(KILL_SWITCH, { state: 'ENABLED', defaultVariant: 'on', variants: { on: true, off: false } });
    for (const tab of tabs) expect(h.updates(tab).map((u) => (u as { value: unknown }).value)).toEqual([false, true]);

    // Viewer b killed alone: held apart. The next kill walks the browsers, and skips b.
    h.recordedAtEmit.length = 0;
    await h.change(KILL_SWITCH, { targeting: { if: [{ '==': [{ var: 'targetingKey' }, 'b'] }, 'off', null] } });
    await h.change(KILL_SWITCH, { state: 'DISABLED', targeting: null });
    expect(h.updates(tabs[1]!).map((u) => (u as { value: unknown }).value)).toEqual([false, true, false]);
    expect(h.updates(tabs[0]!).at(-1)).toMatchObject({ value: false });
    expect(h.recordedAtEmit).toEqual([1, 3]); // walked first: recorded before the emit
    // Every browser killed again, alike: the restore is written first once more.
    h.recordedAtEmit.length = 0;
    await h.change(KILL_SWITCH, { state: 'ENABLED' });
    expect(h.recordedAtEmit).toEqual([0]);
  });

  it('a browser that opens holding another value than the rest (its own targeting) gets no push it does not need', async () => {
    const h = await harness();
    const sam = await h.open('sam');
    await h.change(KILL_SWITCH, { targeting: { if: [{ '==': [{ var: 'targetingKey' }, 'maya'] }, 'off', null] } });
    const maya = await h.open('maya'); // opens killed, the rest live
    const before = h.evaluations();
    await h.change(KILL_SWITCH, { state: 'DISABLED', targeting: null });
    expect(h.evaluations() - before).toBe(1); // the browsers are walked, but DISABLED is evaluated once for all
    expect(h.updates(maya)).toEqual([]); // it holds false already
    expect(h.updates(sam)).toEqual([{ key: KILL_SWITCH, value: false, version: 3 }]);
    await h.change(KILL_SWITCH, { state: 'ENABLED' });
    expect(h.updates(maya)).toEqual([expect.objectContaining({ value: true })]);
  });

  it('a restore carries the refetch window the pacer gives for the pages that get it', async () => {
    const h = await harness();
    const tab = await h.open('a');
    await h.change(KILL_SWITCH, { state: 'DISABLED' });
    await h.change(KILL_SWITCH, { state: 'ENABLED' });
    expect(h.updates(tab).at(-1)).toEqual({ key: KILL_SWITCH, value: true, version: 3, refetchWithinMs: 5000 });
  });

  it('a targeted change reaches only the viewers whose own value changed, every tab of each, with one evaluation per viewer', async () => {
    const h = await harness();
    const mayaTabs = [await h.open('maya', ['beta']), await h.open('maya', ['beta'])];
    const sam = await h.open('sam');
    const before = h.evaluations();
    // Killed for the beta group only.
    await h.change(KILL_SWITCH, { targeting: { if: [{ in: ['beta', { var: 'groups' }] }, 'off', null] } });
    expect(h.evaluations() - before).toBe(2); // maya and sam: one each, not one per tab
    for (const tab of mayaTabs) expect(h.updates(tab)).toEqual([{ key: KILL_SWITCH, value: false, version: 2 }]);
    expect(h.updates(sam)).toEqual([]);
    expect(h.windows.at(-1)).toEqual([KILL_SWITCH, false, 2]);
    expect(h.reached).toEqual([]); // not everyone: no release of every turn
    expect(h.logs).toContainEqual(
      expect.objectContaining({ level: 20, msg: 'flag pushed', key: KILL_SWITCH, version: 2, partitions: 1 }),
    );
  });

  it('ignores flags the page does not use, and browsers that have gone', async () => {
    const h = await harness();
    const gone = await h.open('gone');
    const here = await h.open('here');
    h.close(gone);
    await h.change(LOG_LEVEL, { state: 'ENABLED' });
    await h.change(THEME, { defaultVariant: 'dark' });
    expect(h.updates(gone)).toEqual([]);
    expect(h.updates(here)).toEqual([{ key: THEME, value: 'dark', version: 2 }]); // its own second version
    expect(h.pusher.browserCount).toBe(1);
  });

  /**
   * Every turn of the loop during a push: how many browsers had the update by then, and how many
   * evaluations had been made (both counted from when the watch began).
   */
  const turnWatcher = (h: Awaited<ReturnType<typeof harness>>) => () => {
    const seen: { sent: number; evaluated: number }[] = [];
    let on = true;
    const base = { sent: h.sentTotal(), evaluated: h.evaluations() };
    const tick = () => {
      if (!on) return;
      seen.push({ sent: h.sentTotal() - base.sent, evaluated: h.evaluations() - base.evaluated });
      setImmediate(tick);
    };
    setImmediate(tick);
    return () => ((on = false), seen);
  };
  const distinct = (values: number[]) => [...new Set(values)].sort((a, b) => a - b);

  it('hands a kill to 6,000 browsers in slices while page loads wait, letting the loop turn in between; a restore whole', async () => {
    const h = await harness({ requestsWaiting: () => true });
    for (let i = 0; i < 6000; i++) await h.open(`v${i}`);
    const watchTurns = turnWatcher(h);
    let stop = watchTurns();
    await h.change(KILL_SWITCH, { state: 'DISABLED' });
    let turns = stop();
    // The loop turned while some browsers had the kill and others not yet: a page load arriving
    // meanwhile waited for one slice, not for all 6,000.
    expect(turns.some(({ sent }) => sent > 0 && sent < 6000)).toBe(true);
    expect(h.emits.filter((e) => e.event === 'flag_update').reduce((sum, e) => sum + e.to, 0)).toBe(6000);

    h.emits.length = 0;
    stop = watchTurns();
    await h.change(KILL_SWITCH, { state: 'ENABLED' });
    turns = stop();
    // A restore goes out whole: no browser fetches while others still wait for it.
    expect(turns.every(({ sent }) => sent === 0 || sent === 6000)).toBe(true);
    expect(h.emits.reduce((sum, e) => sum + e.to, 0)).toBe(6000);
  });

  it('hands a kill to 6,000 browsers whole when no page load waits: a turn would be for nobody', async () => {
    let waiting = false;
    const h = await harness({ requestsWaiting: () => waiting });
    for (let i = 0; i < 6000; i++) await h.open(`v${i}`);
    const watchTurns = turnWatcher(h);
    let stop = watchTurns();
    await h.change(KILL_SWITCH, { state: 'DISABLED' });
    let turns = stop();
    expect(turns.every(({ sent }) => sent === 0 || sent === 6000)).toBe(true);
    expect(h.emits.filter((e) => e.event === 'flag_update').reduce((sum, e) => sum + e.to, 0)).toBe(6000);
    // A page load waits again: the next kill lets it in between slices.
    await h.change(KILL_SWITCH, { state: 'ENABLED' });
    waiting = true;
    h.emits.length = 0;
    stop = watchTurns();
    await h.change(KILL_SWITCH, { state: 'DISABLED' });
    turns = stop();
    expect(turns.some(({ sent }) => sent > 0 && sent < 6000)).toBe(true);
  });

  it('hands a kill to 6,400 browsers 2,500 at a time, letting the loop turn in between, when it is not told whether a page load waits', async () => {
    const h = await harness(); // no requestsWaiting: turn between slices, always
    for (let i = 0; i < 6400; i++) await h.open(`v${i}`); // 25 blocks of 250, and one of 150
    const stop = turnWatcher(h)();
    await h.change(KILL_SWITCH, { state: 'DISABLED' });
    const turns = stop();
    // A turn after each 2,500 browsers (10 blocks), none after the last block.
    expect(distinct(turns.map(({ sent }) => sent).filter((sent) => sent > 0 && sent < 6400))).toEqual([2500, 5000]);
    expect(h.sentTotal()).toBe(6400);
  });

  it('reaches everyone block by block in connection order, a block of 250 each; an emptied block is dropped, a new browser fills the newest', async () => {
    const h = await harness();
    const tabs: Awaited<ReturnType<typeof h.open>>[] = [];
    for (let i = 0; i < 600; i++) tabs.push(await h.open(`v${i}`)); // blocks of 250, 250 and 100
    for (const tab of tabs.slice(0, 250)) h.close(tab); // the first block, emptied
    for (let i = 600; i < 610; i++) tabs.push(await h.open(`v${i}`)); // into the third, not a fourth
    h.emits.length = 0;
    await h.change(KILL_SWITCH, { state: 'DISABLED' });
    expect(h.emits.filter((e) => e.event === 'flag_update').map((e) => e.to)).toEqual([250, 110]);
    for (const tab of tabs.slice(250)) expect(h.updates(tab)).toHaveLength(1);
    for (const tab of tabs.slice(0, 250)) expect(h.updates(tab)).toHaveLength(0);
    // The dropped block is not asked for again: the next push reaches the same two.
    h.emits.length = 0;
    await h.change(KILL_SWITCH, { state: 'ENABLED' });
    expect(h.emits.filter((e) => e.event === 'flag_update').map((e) => e.to)).toEqual([250, 110]);
  });

  it('lets the loop turn after a slice, never after the last one: that turn would be for nobody', async () => {
    const h = await harness({ requestsWaiting: () => true });
    for (let i = 0; i < 5000; i++) await h.open(`v${i}`); // 20 blocks of 250: two slices of 2,500
    const stop = turnWatcher(h)();
    await h.change(KILL_SWITCH, { state: 'DISABLED' });
    const turns = stop();
    expect(distinct(turns.map(({ sent }) => sent).filter((sent) => sent > 0))).toEqual([2500]);
  });

  it('hands a targeted change to 5,000 of 5,001 browsers in two slices, each browser once, and lets requests in while it evaluates them', async () => {
    const h = await harness({ requestsWaiting: () => true });
    const keep = await h.open('keep');
    for (let i = 0; i < 5000; i++) await h.open(`v${i}`);
    const stop = turnWatcher(h)();
    // Killed for every viewer but one: each is evaluated, 5,000 ids in one partition.
    await h.change(KILL_SWITCH, { targeting: { if: [{ '==': [{ var: 'targetingKey' }, 'keep'] }, 'on', 'off'] } });
    const turns = stop();
    expect(h.updates(keep)).toEqual([]);
    expect(h.sentTotal()).toBe(5000);
    for (let i = 0; i < 5000; i += 499) expect(h.updates(h.socketsOf(`v${i}`)[0]!)).toHaveLength(1);
    // While it evaluates: a turn every 2,500 evaluations, nothing sent yet.
    expect(
      distinct(
        turns
          .filter(({ sent, evaluated }) => sent === 0 && evaluated > 0 && evaluated < 5001)
          .map(({ evaluated }) => evaluated),
      ),
    ).toEqual([2499, 4999]);
    // No turn once all are evaluated and before the first slice; one between the two slices.
    expect(turns.some(({ sent, evaluated }) => sent === 0 && evaluated === 5001)).toBe(false);
    expect(distinct(turns.map(({ sent }) => sent).filter((sent) => sent > 0 && sent < 5000))).toEqual([2500]);
  });

  it('a change every viewer is evaluated for that leaves them all alike goes to all at once, and lets the next kill or restore skip the walk', async () => {
    const h = await harness();
    const tabs = await Promise.all(['a', 'b', 'c'].map((viewer) => h.open(viewer)));
    // A rule that reads the viewer, and kills every one of them.
    await h.change(KILL_SWITCH, { targeting: { if: [{ '==': [{ var: 'targetingKey' }, 'nobody'] }, 'on', 'off'] } });
    for (const tab of tabs) expect(h.updates(tab)).toStrictEqual([{ key: KILL_SWITCH, value: false, version: 2 }]);
    expect(h.windows.at(-1)).toEqual([KILL_SWITCH, false, 3]);
    expect(h.reached.at(-1)).toEqual([KILL_SWITCH, false]); // every browser: a push to all
    h.recordedAtEmit.length = 0;
    await h.change(KILL_SWITCH, { targeting: null }); // restored for all, by a value no viewer changes
    expect(h.recordedAtEmit).toEqual([0]); // written before any browser was walked
    for (const tab of tabs)
      expect(h.updates(tab).at(-1)).toStrictEqual({ key: KILL_SWITCH, value: true, version: 3, refetchWithinMs: 5000 });
  });

  it('without a refetch policy, a restore carries none', async () => {
    const h = await harness({ refetchPolicy: false });
    const tab = await h.open('a');
    await h.change(KILL_SWITCH, { state: 'DISABLED' });
    await h.change(KILL_SWITCH, { state: 'ENABLED' });
    expect(h.updates(tab)).toStrictEqual([
      { key: KILL_SWITCH, value: false, version: 2 },
      { key: KILL_SWITCH, value: true, version: 3 },
    ]);
  });

  it('with no browser here, a change evaluates and sends nothing; nor once the last has gone; a flag no page uses is no push', async () => {
    const h = await harness();
    await h.pusher.flagsChanged([KILL_SWITCH]);
    expect(h.evaluations()).toBe(0);
    await h.pusher.flagsChanged([LOG_LEVEL]);
    expect(await h.pushesTimed()).toBe(1); // the kill switch's (to nobody), not the log level's
    const tabs = [await h.open('a'), await h.open('a'), await h.open('b')];
    expect(await h.metric('connectedBrowsers')).toEqual([expect.objectContaining({ value: 3 })]);
    for (const tab of tabs) h.close(tab);
    h.close(tabs[0]!); // twice: Socket.IO never does, but nothing must break if it did
    expect(h.pusher.browserCount).toBe(0);
    expect(await h.metric('connectedBrowsers')).toEqual([expect.objectContaining({ value: 0 })]);
    const before = h.evaluations();
    await h.change(KILL_SWITCH, { state: 'DISABLED' });
    expect(h.evaluations() - before).toBe(0); // no viewer left to evaluate
    expect(h.sentTotal()).toBe(0);
  });

  it('a browser that goes while its snapshot is evaluated is not registered, gets nothing, and is forgotten', async () => {
    let closeViewer = (_viewer: string) => {};
    const h = await harness({ onEvaluate: (_key, context) => closeViewer(context.targetingKey!) });
    closeViewer = (viewer) => {
      if (viewer === 'gone') for (const socket of h.socketsOf(viewer)) if (!socket.disconnected) h.close(socket);
    };
    const gone = await h.open('gone');
    expect(gone.received).toEqual([]); // no snapshot
    expect(h.pusher.browserCount).toBe(0);
    expect(await h.metric('connectedBrowsers')).toEqual([expect.objectContaining({ value: 0 })]);
    const here = await h.open('here');
    await h.change(KILL_SWITCH, { state: 'DISABLED' });
    expect(h.updates(gone)).toEqual([]);
    expect(h.updates(here)).toHaveLength(1);
    expect(h.pusher.browserCount).toBe(1);
  });

  it("an evaluation that fails gives the flag's safe default, and says so in the log", async () => {
    let failing = false;
    const h = await harness({
      onEvaluate: (key) => {
        if (failing && key === THEME) throw new Error('provider down');
      },
    });
    await h.change(THEME, { defaultVariant: 'dark' });
    failing = true;
    const tab = await h.open('maya');
    const snapshot = tab.received.find((r) => r.event === 'flag_snapshot')!.payload as Record<string, unknown>;
    expect(snapshot).toEqual({ [KILL_SWITCH]: true, [RECS_FLAVOUR]: 'classic', [THEME]: 'light' }); // light: the theme's safe default
    expect(h.logs).toContainEqual(
      expect.objectContaining({
        level: 50,
        key: THEME,
        msg: 'flag evaluation failed; using the safe default',
        err: expect.objectContaining({ message: 'provider down' }),
      }),
    );
  });

  it("a hung evaluation holds the next browser's snapshot for 10 s at most", async () => {
    const h = await harness({
      onEvaluate: (_key, context) => (context.targetingKey === 'stuck' ? new Promise<void>(() => {}) : undefined),
    });
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const stuck = h.connect('stuck');
      const outcome = stuck.registered.catch((error: unknown) => error);
      const next = h.connect('next');
      let registered = false;
      void next.registered.then(() => (registered = true));
      await vi.advanceTimersByTimeAsync(9_999);
      expect(registered).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(await outcome).toBeInstanceOf(QueueDeadlineError);
      await next.registered;
      expect(next.socket.received.map((r) => r.event)).toEqual(['flag_snapshot']);
      expect(h.pusher.browserCount).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('whether a browser holds a value already', () => {
  it('compares by identity, and a JSON value by its content', () => {
    expect(sameValue(true, true)).toBe(true);
    expect(sameValue('classic', 'friends')).toBe(false);
    expect(sameValue(undefined, false)).toBe(false);
    expect(sameValue({ tiles: [1, 2] }, { tiles: [1, 2] })).toBe(true);
    expect(sameValue({ tiles: [1, 2] }, { tiles: [2, 1] })).toBe(false);
    expect(sameValue(undefined, { tiles: [] })).toBe(false);
  });
});
