import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../server/observability/logger.js';
import {
  BUDGET_KEYS,
  ClusterBudget,
  InstanceBudget,
  type Budget,
  type ClusterBudgetOptions,
} from '../../server/upstream/budget.js';
import { TestRedis } from '../../testing/redis.js';
import { waitFor } from '../helpers/app.js';

const TTL_MS = 600;
const RENEW_MS = 50;

describe('the third-party budget', () => {
  let server: TestRedis;
  const budgets: ClusterBudget[] = [];
  beforeAll(async () => {
    server = await TestRedis.create({ persist: false });
  });
  afterEach(async () => {
    for (const budget of budgets.splice(0)) budget.close();
    await server.start(); // a test may have stopped it
    await server.client().flushall();
  });
  afterAll(() => server.destroy());

  /** An instance's budget for the avatars, on the test's Redis (a connection of its own, as an instance has). */
  const instance = (name: string, cap: number, options: Partial<ClusterBudgetOptions> = {}) => {
    const budget = new ClusterBudget({
      redis: server.client({ enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 50 }),
      service: 'avatars',
      cap,
      instance: name,
      logger: createLogger('silent'),
      share: () => 1,
      ttlMs: TTL_MS,
      renewEveryMs: RENEW_MS,
      ...options,
    });
    budgets.push(budget);
    return budget;
  };

  /** Samples every instance's slice every 5 ms for `ms`, and gives the largest sum seen. */
  const peakSum = async (of: ClusterBudget[], ms: number) => {
    let peak = 0;
    const until = performance.now() + ms;
    while (performance.now() < until) {
      peak = Math.max(
        peak,
        of.reduce((sum, budget) => sum + budget.held(), 0),
      );
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return peak;
  };

  it('without Redis, is the whole cap, always', () => {
    const budget: Budget = new InstanceBudget(32);
    budget.want(100, 32);
    expect([budget.held(), budget.expected()]).toEqual([32, 32]);
    expect(budget.usage(7)).toEqual({ scope: 'instance', cap: 32, held: 32, inUse: 7, instances: 1 });
  });

  it('gives an instance the whole cap when it is alone in wanting, and holds nothing for one that wants nothing', async () => {
    const busy = instance('busy', 4);
    const idle = instance('idle', 4);
    busy.want(10, 0);
    await waitFor(() => busy.held() === 4, 2000, 'the whole cap');
    await peakSum([busy, idle], 200);
    expect(idle.held()).toBe(0);
    expect(Object.keys(await server.client().hgetall(BUDGET_KEYS.leases('avatars')))).toEqual(['busy']);
    expect(busy.usage(4)).toEqual({ scope: 'cluster', cap: 4, held: 4, inUse: 4, instances: 2 });
  });

  it('shares the cap between instances that both want more than it, in proportion, and never grants more than it in all', async () => {
    // Their own clocks an hour apart: the leases run on Redis's.
    const a = instance('a', 4);
    const b = instance('b', 4, { now: () => performance.now() + 3_600_000 });
    a.want(6, 0);
    await waitFor(() => a.held() === 4, 2000, 'a alone');
    b.want(3, 0);
    const peak = await peakSum([a, b], 600);
    expect(peak).toBeLessThanOrEqual(4);
    // 6 : 3 of a cap of 4 is 3 : 1 (rounded up, within what the other does not hold).
    await waitFor(() => a.held() === 3 && b.held() === 1, 2000, 'the proportional shares');
  });

  it('never takes back a call in flight, yet a busy instance gives way: it starts no call past its part until the other has one', async () => {
    const a = instance('a', 2);
    a.want(6, 0);
    await waitFor(() => a.held() === 2, 2000, 'a holds the cap');
    a.want(6, 2); // both of a's slots in use
    const b = instance('b', 2);
    b.want(3, 0);
    // Parts of 2 for 6 : 3 wanted are 1 : 1, but a's two calls are in flight: b waits for one to end.
    const peak = await peakSum([a, b], 400);
    expect(peak).toBeLessThanOrEqual(2);
    expect([a.held(), b.held()]).toEqual([1, 0]);
    a.want(5, 1); // one of a's calls ended: a starts no other
    await waitFor(() => b.held() === 1, 2000, "b's part");
    expect(a.held()).toBe(1);
    a.want(0, 0); // a is done
    await waitFor(() => b.held() === 2, 2000, 'b gets what a gave back');
  });

  it('gives a slot back the moment a call ends past its part, not at its next renewal', async () => {
    // a hears of the contention at once, then renews only every 10 s: only the call's end can tell Redis.
    const a = instance('a', 2, { renewEveryMs: 50, renewContendedEveryMs: 10_000 });
    a.want(2, 0);
    await waitFor(() => a.held() === 2, 2000, 'a holds the cap');
    a.want(2, 2);
    const b = instance('b', 2);
    b.want(3, 0);
    await waitFor(() => a.held() === 1, 2000, 'a told of its part');
    a.want(2, 1); // one of a's calls ended
    const started = performance.now();
    await waitFor(() => b.held() === 1, 2000, "b's part");
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it("frees a dead instance's slice once its lease runs out", async () => {
    const dying = instance('dying', 3);
    dying.want(3, 0);
    await waitFor(() => dying.held() === 3, 2000, 'the slice');
    dying.close(); // no more renewals, no goodbye: as after a SIGKILL
    const survivor = instance('survivor', 3);
    survivor.want(3, 0);
    const started = performance.now();
    await waitFor(() => survivor.held() === 3, 5000, 'the freed slice');
    expect(performance.now() - started).toBeLessThan(TTL_MS + 4 * RENEW_MS + 200);
  });

  it('falls back to its share of the instances last seen while Redis is away, and is rebuilt with nothing left over when it is back', async () => {
    const a = instance('a', 4);
    const b = instance('b', 4);
    a.want(4, 0);
    b.want(0, 0);
    await waitFor(() => a.held() === 4 && a.usage(0).instances === 2, 2000, 'a holds the cap, both instances seen');
    await server.stop();
    // Past the lease's end, no more than 4 / 2 instances last seen.
    await waitFor(() => a.held() === 2, 3000, 'the fallback share');
    expect(b.held()).toBe(0);
    await server.start();
    await waitFor(() => a.held() === 4, 5000, 'the budget rebuilt');
    a.want(0, 0);
    await waitFor(
      async () => Object.keys(await server.client().hgetall(BUDGET_KEYS.leases('avatars'))).length === 0,
      3000,
      'nothing held at rest',
    );
  });

  it("plans with its part of the cluster's open pages", () => {
    const budget = instance('a', 32, { share: () => 0.75 });
    expect(budget.expected()).toBe(24);
    expect(instance('b', 32, { share: () => 0 }).expected()).toBe(1);
  });
});
