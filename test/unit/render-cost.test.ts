import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { measureRenderCost } from '../../server/upstream/render-cost.js';

/** A CPU clock the test moves: `spend(ms)` is this process working for `ms`. */
function cpu() {
  let micros = 0;
  return { usage: () => ({ user: micros, system: 0 }), spend: (ms: number) => (micros += ms * 1000) };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('the cost of a live render, as the pacer sees it', () => {
  it('starts from the guess, then follows the CPU time per live render sampled', () => {
    const clock = cpu();
    const cost = measureRenderCost({ sampleMs: 500, minRenders: 10, share: 0.5, initialMs: 2, cpuUsage: clock.usage });
    expect(cost).toMatchObject({ service: 'renderer', capacity: 1 });
    expect(cost.latencyMs()).toBe(4); // 2 ms of CPU, renders may take half of the loop
    // 100 renders in 500 ms, 400 ms of CPU: 4 ms each.
    for (let i = 0; i < 100; i++) cost.rendered();
    clock.spend(400);
    vi.advanceTimersByTime(500);
    expect(cost.cpuMsPerRender()).toBe(3); // half-way from the guess
    for (let i = 0; i < 100; i++) cost.rendered();
    clock.spend(400);
    vi.advanceTimersByTime(500);
    expect(cost.cpuMsPerRender()).toBe(3.5);
    expect(cost.latencyMs()).toBe(7);
    cost.close();
  });

  it('keeps its estimate through a busy sample with too few renders to say anything', () => {
    const clock = cpu();
    const cost = measureRenderCost({ sampleMs: 500, minRenders: 10, initialMs: 2, cpuUsage: clock.usage });
    for (let i = 0; i < 100; i++) cost.rendered();
    clock.spend(500); // 5 ms a render, busy
    vi.advanceTimersByTime(500);
    expect(cost.cpuMsPerRender()).toBe(3.5);
    for (let i = 0; i < 9; i++) cost.rendered();
    clock.spend(400); // busy with something else: 9 renders say nothing of their cost
    vi.advanceTimersByTime(500);
    expect(cost.cpuMsPerRender()).toBe(3.5);
    cost.close();
  });

  it('returns to its first guess while the process is not busy: other work charged to a few renders defers nobody', () => {
    const clock = cpu();
    const cost = measureRenderCost({ sampleMs: 500, minRenders: 10, initialMs: 2, cpuUsage: clock.usage });
    for (let i = 0; i < 20; i++) cost.rendered();
    clock.spend(500);
    vi.advanceTimersByTime(500);
    expect(cost.cpuMsPerRender()).toBe(13.5); // 25 ms a render while busy: believed, half-way
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 20; i++) cost.rendered();
      clock.spend(200); // 40 % of the time on CPU: 10 ms "a render", but nothing is limited by it
      vi.advanceTimersByTime(500);
    }
    expect(cost.cpuMsPerRender()).toBeCloseTo(2, 1);
    cost.close();
  });

  it('stops sampling once closed', () => {
    const clock = cpu();
    const cost = measureRenderCost({ sampleMs: 500, minRenders: 1, initialMs: 2, cpuUsage: clock.usage });
    cost.close();
    for (let i = 0; i < 10; i++) cost.rendered();
    clock.spend(1000);
    vi.advanceTimersByTime(5000);
    expect(cost.cpuMsPerRender()).toBe(2);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('with no options: a 2 ms guess, renders may take 60 % of the loop, a sample every 500 ms that needs 20 renders', () => {
    const clock = cpu();
    const cost = measureRenderCost({ cpuUsage: clock.usage });
    expect(cost.cpuMsPerRender()).toBe(2);
    expect(cost.latencyMs()).toBeCloseTo(2 / 0.6, 10);
    for (let i = 0; i < 20; i++) cost.rendered();
    clock.spend(400); // 20 ms a render, busy
    vi.advanceTimersByTime(499);
    expect(cost.cpuMsPerRender()).toBe(2); // not sampled yet
    vi.advanceTimersByTime(1);
    expect(cost.cpuMsPerRender()).toBe(11);
    for (let i = 0; i < 19; i++) cost.rendered();
    clock.spend(400); // busy, but 19 renders say too little
    vi.advanceTimersByTime(500);
    expect(cost.cpuMsPerRender()).toBe(11);
    cost.close();
  });

  it('counts system time as well as user time, and counts a sample at exactly the busy line or the render minimum', () => {
    let user = 3_000_000; // the process has run for a while already
    let system = 1_000_000;
    const cost = measureRenderCost({ sampleMs: 500, minRenders: 10, initialMs: 2, cpuUsage: () => ({ user, system }) });
    for (let i = 0; i < 10; i++) cost.rendered(); // exactly the minimum
    user += 150_000;
    system += 100_000; // 250 ms in all: exactly half the time, busy
    vi.advanceTimersByTime(500);
    expect(cost.cpuMsPerRender()).toBe(13.5); // 25 ms a render, half-way from 2
    cost.close();
  });

  it('measures the process itself when given no clock', () => {
    vi.useRealTimers();
    const cost = measureRenderCost({ sampleMs: 5 });
    expect(cost.cpuMsPerRender()).toBe(2);
    cost.close();
  });
});
