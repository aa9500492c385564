import { describe, expect, it } from 'vitest';
import {
  createLiveSync,
  KILL_SWITCH,
  MAX_RETRIES,
  RECS_FLAVOUR,
  type FragmentAnswer,
} from '../../public/js/live-sync.js';

/**
 * The page's policy with timers the test runs by hand and a server the test answers: every
 * request the page would make, and when, is visible.
 */
function harness(options: { live?: boolean; flavour?: string } = {}) {
  const timers: { fn: () => void; ms: number }[] = [];
  const fetches: (string | undefined)[] = [];
  const answers: (FragmentAnswer | Error | Promise<FragmentAnswer>)[] = [];
  const log: string[] = [];
  const sync = createLiveSync({
    live: options.live ?? true,
    flavour: options.flavour ?? 'classic',
    random: () => 0.5,
    setTimer: (fn, ms) => {
      const timer = { fn, ms };
      timers.push(timer);
      return timer;
    },
    clearTimer: (timer) => {
      const index = timers.indexOf(timer);
      if (index >= 0) timers.splice(index, 1);
    },
    effects: {
      kill: () => log.push('kill'),
      swap: (html) => log.push(`swap ${html}`),
      catchingUp: (ms) => log.push(`catching-up ${ms ?? 'done'}`),
      theme: (value) => log.push(`theme ${String(value)}`),
      say: () => undefined,
      fetchFragment: async (turn) => {
        fetches.push(turn);
        const answer = await (answers.shift() ?? { kind: 'fragment', html: 'live', turn: undefined });
        if (answer instanceof Error) throw answer;
        return answer;
      },
    },
  });
  /** Runs the next timer and lets its fetch settle; gives the delay it was set for. */
  const tick = async () => {
    const timer = timers.shift();
    if (!timer) throw new Error('no timer pending');
    timer.fn();
    for (let i = 0; i < 5; i++) await Promise.resolve();
    return timer.ms;
  };
  return { sync, timers, fetches, answers, log, tick };
}

describe('the page policy (live-sync)', () => {
  it('a kill applies in place with no request and cancels a pending refetch', async () => {
    const { sync, fetches, timers, log } = harness({ live: false });
    sync.update({ key: KILL_SWITCH, value: true, refetchWithinMs: 1000 });
    expect(timers).toHaveLength(1);
    sync.update({ key: KILL_SWITCH, value: false });
    expect(log).toContain('kill');
    expect(timers).toHaveLength(0);
    expect(fetches).toEqual([]);
  });

  it('a restore fetches once, at a random moment of the window the server gave', async () => {
    const { sync, fetches, tick, log } = harness({ live: false });
    sync.update({ key: KILL_SWITCH, value: true, refetchWithinMs: 8000 });
    expect(log).toEqual(['catching-up 4000']);
    expect(await tick()).toBe(4000);
    expect(fetches).toEqual([undefined]);
    expect(log.slice(1)).toEqual(['swap live', 'catching-up done']);
    // The same value again (a snapshot after a reconnect) changes nothing.
    sync.snapshot({ [KILL_SWITCH]: true });
    expect(fetches).toHaveLength(1);
  });

  it('follows turns: waits as the server says, and comes back with its turn until it is whole', async () => {
    const { sync, fetches, tick, answers, log } = harness({ live: false });
    answers.push({ kind: 'wait', turn: { token: 't1', waitMs: 3000 } });
    answers.push({ kind: 'fragment', html: 'short', turn: { token: 't2', waitMs: 500 } });
    sync.update({ key: KILL_SWITCH, value: true, refetchWithinMs: 100 });
    await tick();
    expect(await tick()).toBe(3000);
    expect(await tick()).toBe(500);
    expect(fetches).toEqual([undefined, 't1', 't2']);
    expect(log).toEqual([
      'catching-up 50',
      'catching-up 3000',
      'swap short',
      'catching-up 500',
      'swap live',
      'catching-up done',
    ]);
  });

  it('retries a failed fetch with backoff, then gives up with what it has', async () => {
    const { sync, fetches, tick, answers, timers } = harness({ live: false });
    for (let i = 0; i <= MAX_RETRIES; i++) answers.push(new Error('network'));
    sync.update({ key: KILL_SWITCH, value: true, refetchWithinMs: 0 });
    const delays = [];
    while (timers.length) delays.push(await tick());
    expect(delays).toEqual([0, 500, 1000, 2000, 4000]);
    expect(fetches).toHaveLength(MAX_RETRIES + 1);
  });

  it('drops an answer that arrives after a newer change', async () => {
    const { sync, answers, log, tick } = harness({ live: false });
    let release!: (answer: FragmentAnswer) => void;
    answers.push(new Promise<FragmentAnswer>((resolve) => (release = resolve)));
    sync.update({ key: KILL_SWITCH, value: true, refetchWithinMs: 0 });
    await tick(); // the fetch is under way ...
    sync.update({ key: KILL_SWITCH, value: false }); // ... when the kill comes
    release({ kind: 'fragment', html: 'stale', turn: undefined });
    for (let i = 0; i < 5; i++) await Promise.resolve();
    expect(log).not.toContain('swap stale');
    expect(log.at(-1)).toBe('kill');
  });

  it('a new recommendations flavour refetches a live page only, within its window', async () => {
    const live = harness({ live: true, flavour: 'classic' });
    live.sync.update({ key: RECS_FLAVOUR, value: 'classic' });
    expect(live.timers).toHaveLength(0);
    live.sync.update({ key: RECS_FLAVOUR, value: 'friends', refetchWithinMs: 2000 });
    expect(await live.tick()).toBe(1000);
    expect(live.fetches).toHaveLength(1);

    const killed = harness({ live: false, flavour: 'classic' });
    killed.sync.update({ key: RECS_FLAVOUR, value: 'friends', refetchWithinMs: 2000 });
    expect(killed.timers).toHaveLength(0);
  });
});
