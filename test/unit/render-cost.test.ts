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
});
