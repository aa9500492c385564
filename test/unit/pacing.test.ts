import { describe, expect, it } from 'vitest';
import { createPacer, type PacedService } from '../../server/upstream/pacing.js';

/** Two services of `capacity` calls at `latency` ms each, and a clock the test moves. */
function setup(capacity = 4, latency = 100, budgetMs = 400) {
  let now = 1_000_000;
  const services: PacedService[] = [
    { service: 'avatars', capacity, latencyMs: () => latency },
    { service: 'recommendations', capacity, latencyMs: () => latency },
  ];
  const pacer = createPacer({ services, budgetMs, now: () => now, key: Buffer.alloc(32, 7) });
  return { pacer, advance: (ms: number) => (now += ms), at: () => now };
}

describe('the pacer', () => {
  it('admits while the backlog is within the budget, then hands out turns in order at the services\' pace', () => {
    const { pacer } = setup(4, 100, 400);
    // Each call costs latency / capacity = 25 ms of the service's time: 16 calls fill the 400 ms budget.
    const admitted = Array.from({ length: 17 }, (_, i) => pacer.admit({ recommendations: 1 }, `v${i}`));
    expect(admitted.every((a) => a.admitted)).toBe(true);
    const turns = Array.from({ length: 4 }, (_, i) => pacer.admit({ recommendations: 1 }, `late${i}`));
    expect(turns.some((a) => a.admitted)).toBe(false);
    const waits = turns.map((a) => (a.admitted ? -1 : a.turn.waitMs));
    // Backlog 425 ms: the first turn when it is down to half the budget, then one call's time apart.
    expect(waits).toEqual([225, 250, 275, 300]);
  });

  it('a turn brought back on time is admitted without asking again; a forged, foreign or stale one is not', () => {
    const { pacer, advance } = setup(1, 100, 100);
    pacer.admit({ avatars: 1 }, 'a');
    pacer.admit({ avatars: 1 }, 'b');
    for (let i = 0; i < 6; i++) pacer.admit({ avatars: 1 }, `ahead-${i}`); // turns ahead of c's
    const deferred = pacer.admit({ avatars: 1 }, 'c');
    if (deferred.admitted) throw new Error('expected a turn');
    const { token, waitMs } = deferred.turn;
    expect(pacer.admit({ avatars: 1 }, 'c', { token }).admitted).toBe(false); // too early
    advance(waitMs);
    expect(pacer.admit({ avatars: 1 }, 'c', { token })).toEqual({ admitted: true, byTurn: true });
    expect(pacer.admit({ avatars: 1 }, 'someone-else', { token }).admitted).toBe(false);
    const [at, mac] = token.split('.');
    expect(pacer.admit({ avatars: 1 }, 'c', { token: `${Number(at) - 1}.${mac}` }).admitted).toBe(false);
    advance(61_000);
    expect(pacer.admit({ avatars: 1 }, 'c', { token })).toEqual({ admitted: true, byTurn: false }); // stale: asked again, and the backlog is gone
  });

  it('a page load (someone waiting) is admitted only when its calls start almost at once', () => {
    const { pacer } = setup(4, 100, 400);
    for (let i = 0; i < 4; i++) pacer.admit({ avatars: 1 }, `v${i}`); // 100 ms of backlog
    expect(pacer.admit({ avatars: 1 }, 'reader', { foreground: true }).admitted).toBe(false);
    expect(pacer.admit({ avatars: 1 }, 'background').admitted).toBe(true);
  });

  it('needs no capacity for a render that makes no call, and the backlog drains with time', () => {
    const { pacer, advance } = setup(1, 100, 100);
    for (let i = 0; i < 5; i++) pacer.admit({ avatars: 1 }, `v${i}`);
    expect(pacer.admit({}, 'cached').admitted).toBe(true);
    expect(pacer.admit({ avatars: 1 }, 'x').admitted).toBe(false);
    advance(1000);
    expect(pacer.admit({ avatars: 1 }, 'y').admitted).toBe(true);
  });

  it('a kill of every page releases the turns handed out: the next restore does not queue behind them', () => {
    const { pacer } = setup(4, 100, 400);
    // A restore of 200 pages: turns reserved far ahead (200 calls x 25 ms = 5 s of backlog).
    for (let i = 0; i < 200; i++) pacer.admit({ avatars: 1, recommendations: 1 }, `page-${i}`);
    expect(pacer.spreadMs(100, { avatars: 1, recommendations: 1 })).toBeGreaterThan(5000);
    // Killed before their turns: none of them will come back.
    pacer.releaseAll();
    // Only what may be in flight (one latency) stays ahead of the next restore's 100 pages (2.5 s).
    expect(pacer.spreadMs(100, { avatars: 1, recommendations: 1 })).toBe(100 + 2500);
  });

  it('sizes the refetch window of a flip to the pages, the calls each needs and the capacity', () => {
    const { pacer } = setup(4, 100, 400);
    expect(pacer.spreadMs(1000, { avatars: 1, recommendations: 1 })).toBe(25_000);
    expect(pacer.spreadMs(1000, { recommendations: 2 })).toBe(50_000);
    expect(pacer.spreadMs(0, { recommendations: 1 })).toBe(0);
    expect(pacer.spreadMs(10_000_000, { recommendations: 1 })).toBe(600_000); // capped at ten minutes
  });
});
