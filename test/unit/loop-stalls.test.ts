import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { watchLoopStalls, type LoopStalls } from '../../server/upstream/loop-stalls.js';

const busy = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // The loop does nothing else.
  }
};

describe('watchLoopStalls', () => {
  let stalls: LoopStalls;
  afterEach(() => stalls.close());

  it('counts a stall still going on, and one that ended, but only after `since`', async () => {
    stalls = watchLoopStalls({ tickMs: 10 });
    await sleep(30);
    const before = performance.now();
    busy(120);
    // Still stalled: no tick has fired since.
    expect(stalls.lostSince(before)).toBeGreaterThanOrEqual(100);
    await sleep(30);
    // Over: the tick recorded it, and it is still counted from before it.
    expect(stalls.lostSince(before)).toBeGreaterThanOrEqual(100);
    expect(stalls.lostSince(before)).toBeLessThan(1000);
    // Nothing since it ended.
    const after = performance.now();
    await sleep(30);
    expect(stalls.lostSince(after)).toBeLessThan(80);
  });

  it('counts only the part of a stall after `since`', async () => {
    stalls = watchLoopStalls({ tickMs: 10 });
    await sleep(30);
    const start = performance.now();
    busy(60);
    const midway = performance.now();
    busy(60);
    await sleep(30);
    const whole = stalls.lostSince(start);
    const half = stalls.lostSince(midway);
    expect(whole).toBeGreaterThanOrEqual(100);
    expect(half).toBeGreaterThanOrEqual(45);
    expect(half).toBeLessThan(whole - 40);
  });
});

/**
 * The same rules on a clock of our own: the interval runs on vitest's fake timers, and a stall
 * is the clock moving on while no timer fires (exactly what a busy loop does to a real one).
 */
describe('watchLoopStalls, to the millisecond', () => {
  let clock = 0;
  let watch: LoopStalls | undefined;
  beforeEach(() => {
    vi.useFakeTimers();
    clock = 0;
  });
  afterEach(() => {
    watch?.close();
    vi.useRealTimers();
  });
  /** The loop runs freely for `ms`: every tick on time. */
  const run = (ms: number, tickMs: number) => {
    for (let t = 0; t < ms; t += tickMs) {
      clock += tickMs;
      vi.advanceTimersByTime(tickMs);
    }
  };

  it('an idle loop loses nothing; a stall counts exactly, ongoing or over, from `since` on', () => {
    watch = watchLoopStalls({ tickMs: 10, now: () => clock });
    run(30, 10);
    expect(watch.lostSince(0)).toBe(0);
    clock += 110; // stalled: the tick due at 40 fires at 140
    expect(watch.lostSince(30)).toBe(100); // ongoing: 110 since the last tick, less the tick itself
    expect(watch.lostSince(90)).toBe(50); // only what came after `since`
    vi.advanceTimersByTime(10);
    expect(watch.lostSince(30)).toBe(100); // over, recorded as it ended
    expect(watch.lostSince(90)).toBe(50);
    expect(watch.lostSince(140)).toBe(0); // it ended at 140
    run(50, 10);
    expect(watch.lostSince(30)).toBe(100); // and later ticks on time add nothing
    expect(watch.lostSince(180)).toBe(0); // a stall over before `since` adds nothing (not a negative share)
  });

  it('a tick late by the noise (5 ms) or less is no stall; by more, it is', () => {
    watch = watchLoopStalls({ tickMs: 10, now: () => clock });
    clock += 15; // 5 ms late
    vi.advanceTimersByTime(10);
    expect(watch.lostSince(0)).toBe(0);
    clock += 16; // 6 ms late
    vi.advanceTimersByTime(10);
    expect(watch.lostSince(0)).toBe(6);
    clock += 15; // ongoing by 5: noise
    expect(watch.lostSince(0)).toBe(6);
    clock += 1; // ongoing by 6
    expect(watch.lostSince(0)).toBe(12);
  });

  it('forgets stalls older than keepMs; ticks every 20 ms by default', () => {
    watch = watchLoopStalls({ keepMs: 1000, now: () => clock });
    clock += 120; // the default tick (20 ms) fires at 120: 100 ms late
    vi.advanceTimersByTime(20);
    expect(watch.lostSince(0)).toBe(100);
    run(1000, 20);
    expect(watch.lostSince(0)).toBe(100); // kept: it ended 1000 ms ago, not more
    run(20, 20);
    expect(watch.lostSince(0)).toBe(0); // forgotten
  });

  it('close stops the watch', () => {
    watch = watchLoopStalls({ tickMs: 10, now: () => clock });
    expect(vi.getTimerCount()).toBe(1);
    watch.close();
    expect(vi.getTimerCount()).toBe(0);
  });
});
