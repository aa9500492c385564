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

  it('ignores a sample with too few renders to say anything (an idle process)', () => {
    const clock = cpu();
    const cost = measureRenderCost({ sampleMs: 500, minRenders: 10, initialMs: 2, cpuUsage: clock.usage });
    for (let i = 0; i < 9; i++) cost.rendered();
    clock.spend(300); // GC, timers, a few page loads: not a render's cost
    vi.advanceTimersByTime(500);
    expect(cost.cpuMsPerRender()).toBe(2);
    // The renders of a sample are not carried into the next one.
    cost.rendered();
    clock.spend(50);
    vi.advanceTimersByTime(500);
    expect(cost.cpuMsPerRender()).toBe(2);
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
