import { ProviderEvents, type EvaluationContext } from '@openfeature/server-sdk';
import { describe, expect, it } from 'vitest';
import { defaultFlagDocument, KILL_SWITCH, LOG_LEVEL, RECS_FLAVOUR, THEME } from '../../server/flags/catalog.js';
import { FlagRepositoryProvider } from '../../server/flags/provider.js';
import { FlagRepository } from '../../server/flags/repository.js';
import { createLogger } from '../../server/observability/logger.js';
import { createMetrics } from '../../server/observability/metrics.js';
import { FlagPusher } from '../../server/realtime/push.js';
import { MemoryBackend } from '../helpers/memory-backend.js';

/**
 * The push without sockets: Socket.IO's rooms and emits in memory (every socket is in a room of
 * its own id, as in Socket.IO), and the real repository and provider over a backend in memory.
 */
async function harness(options: { requestsWaiting?: () => boolean } = {}) {
  const logger = createLogger('silent');
  const repository = new FlagRepository(new MemoryBackend(defaultFlagDocument()), logger);
  await repository.start();
  const provider = new FlagRepositoryProvider(repository, logger);
  await provider.initialize();
  let evaluations = 0;
  const counting: Pick<FlagRepositoryProvider, 'resolve' | 'versionOf'> = {
    resolve: (type, key, defaultValue, context) => (evaluations++, provider.resolve(type, key, defaultValue, context)),
    versionOf: (key) => provider.versionOf(key),
  };

  const rooms = new Map<string, Set<string>>();
  const sockets = new Map<string, FakeSocket>();
  /** Every emit, in order: which event, to how many sockets. */
  const emits: { event: string; to: number }[] = [];
  /** At each flag_update emit: how many browsers were already recorded as holding its value. */
  const recordedAtEmit: number[] = [];
  const deliver = (targets: string[], event: string, payload: unknown) => {
    const ids = new Set(targets.flatMap((target) => [...(rooms.get(target) ?? [])]));
    emits.push({ event, to: ids.size });
    if (event === 'flag_update' && ids.size > 0) {
      const { key, value } = payload as { key: string; value: unknown };
      recordedAtEmit.push([...sockets.values()].filter((socket) => !socket.disconnected && socket.data.last[key] === value).length);
    }
    for (const id of ids) sockets.get(id)?.received.push({ event, payload });
  };
  const io = {
    local: { to: (target: string | string[]) => ({ emit: (event: string, payload: unknown) => deliver([target].flat(), event, payload) }) },
    of: () => ({ adapter: { rooms } }),
  };
  const windows: unknown[][] = [];
  const pusher = new FlagPusher({
    io: io as never,
    flags: counting,
    metrics: createMetrics({ collectDefaults: false }),
    logger: createLogger('silent'),
    refetchWindow: (key, value, pages, everyone) => {
      windows.push([key, value, pages, everyone]);
      return key === KILL_SWITCH && value === true ? 5000 : undefined;
    },
    ...options,
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
  async function open(viewer: string, groups: string[] = []): Promise<FakeSocket> {
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
    await pusher.register(socket as never);
    return socket;
  }
  function close(socket: FakeSocket) {
    socket.disconnected = true;
    for (const members of rooms.values()) members.delete(socket.id);
    pusher.unregister(socket as never);
  }
  // As in sockets.ts: the provider's changes go to the pusher.
  provider.events.addHandler(ProviderEvents.ConfigurationChanged, (details) => void pusher.flagsChanged((details?.flagsChanged as string[]) ?? []));
  /** Writes one flag, as the API would, and waits until its push has been handed to the sockets. */
  async function change(key: string, patch: Record<string, unknown>) {
    await repository.update(key, (current) => ({ ...current, ...patch }) as never, { actor: { source: 'api', name: 'test' } });
    await pusher.idle();
  }
  const updates = (socket: FakeSocket) => socket.received.filter((r) => r.event === 'flag_update').map((r) => r.payload);
  return { provider, pusher, open, close, change, updates, emits, windows, recordedAtEmit, evaluations: () => evaluations };
}

describe('the per-viewer push, without sockets', () => {
  it('sends each browser the snapshot of the page\'s flags, evaluated for its viewer', async () => {
    const h = await harness();
    const maya = await h.open('maya', ['beta']);
    const sam = await h.open('sam');
    const snapshot = (socket: typeof maya) => socket.received.find((r) => r.event === 'flag_snapshot')!.payload as Record<string, unknown>;
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
    for (const tab of tabs) expect(h.updates(tab)).toEqual([{ key: KILL_SWITCH, value: false, version: 2 }]);
    expect(h.windows).toEqual([[KILL_SWITCH, false, 4, true]]);
    await h.change(KILL_SWITCH, { state: 'DISABLED', defaultVariant: 'off' });
    for (const tab of tabs) expect(h.updates(tab)).toHaveLength(1);
  });

  it('a kill or restore of a switch every browser holds alike is written before any browser is walked; one held apart is walked first', async () => {
    const h = await harness();
    const tabs = await Promise.all(['a', 'b', 'c'].map((viewer) => h.open(viewer)));
    await h.change(KILL_SWITCH, { state: 'DISABLED' });
    await h.change(KILL_SWITCH, { state: 'ENABLED' });
    // Sent first, recorded after: no browser was recorded as holding the value when it went out
    // (one emit per slice room that holds a browser: three each).
    expect(h.recordedAtEmit).toEqual([0, 0, 0, 0, 0, 0]);
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
    expect(h.recordedAtEmit).toEqual([0, 0, 0]);
  });

  it('a browser that opens holding another value than the rest (its own targeting) gets no push it does not need', async () => {
    const h = await harness();
    const sam = await h.open('sam');
    await h.change(KILL_SWITCH, { targeting: { if: [{ '==': [{ var: 'targetingKey' }, 'maya'] }, 'off', null] } });
    const maya = await h.open('maya'); // opens killed, the rest live
    await h.change(KILL_SWITCH, { state: 'DISABLED', targeting: null });
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
    expect(h.windows.at(-1)).toEqual([KILL_SWITCH, false, 2, false]); // not everyone: no release of every turn
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

  /** Every turn of the loop during a push, with how many browsers had the update by then. */
  const turnWatcher = (h: Awaited<ReturnType<typeof harness>>) => () => {
    const seen: number[] = [];
    let on = true;
    const sent = () => h.emits.filter((e) => e.event === 'flag_update').reduce((sum, e) => sum + e.to, 0);
    const base = sent();
    const tick = () => {
      if (!on) return;
      seen.push(sent() - base);
      setImmediate(tick);
    };
    setImmediate(tick);
    return () => ((on = false), seen);
  };

  it('hands a kill to 6,000 browsers in slices while page loads wait, letting the loop turn in between; a restore whole', async () => {
    const h = await harness({ requestsWaiting: () => true });
    for (let i = 0; i < 6000; i++) await h.open(`v${i}`);
    const watchTurns = turnWatcher(h);
    let stop = watchTurns();
    await h.change(KILL_SWITCH, { state: 'DISABLED' });
    let turns = stop();
    // The loop turned while some browsers had the kill and others not yet: a page load arriving
    // meanwhile waited for one slice, not for all 6,000.
    expect(turns.some((count) => count > 0 && count < 6000)).toBe(true);
    expect(h.emits.filter((e) => e.event === 'flag_update').reduce((sum, e) => sum + e.to, 0)).toBe(6000);

    h.emits.length = 0;
    stop = watchTurns();
    await h.change(KILL_SWITCH, { state: 'ENABLED' });
    turns = stop();
    // A restore goes out whole: no browser fetches while others still wait for it.
    expect(turns.every((count) => count === 0 || count === 6000)).toBe(true);
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
    expect(turns.every((count) => count === 0 || count === 6000)).toBe(true);
    expect(h.emits.filter((e) => e.event === 'flag_update').reduce((sum, e) => sum + e.to, 0)).toBe(6000);
    // A page load waits again: the next kill lets it in between slices.
    await h.change(KILL_SWITCH, { state: 'ENABLED' });
    waiting = true;
    h.emits.length = 0;
    stop = watchTurns();
    await h.change(KILL_SWITCH, { state: 'DISABLED' });
    turns = stop();
    expect(turns.some((count) => count > 0 && count < 6000)).toBe(true);
  });
});
