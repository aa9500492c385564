import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../server/observability/logger.js';
import {
  BUDGET_KEYS,
  ClusterBudget,
  InstanceBudget,
  type Budget,
  type ClusterBudgetOptions,
} from '../../server/upstream/budget.js';
import { Slots, type Release } from '../../server/upstream/slots.js';
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
    await Promise.all(budgets.splice(0).map((budget) => budget.close()));
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
    const idle = instance('idle', 4);
    const busy = instance('busy', 4);
    await waitFor(() => busy.usage(0).instances === 2, 2000, 'both seen');
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

  it('tells Redis at once of a slice that shrank, not at its next renewal: the other instance has its part', async () => {
    // a renews only every 10 s once contended: only telling Redis at once frees b's part.
    const a = instance('a', 2, { renewEveryMs: 50, renewContendedEveryMs: 10_000 });
    a.want(2, 0);
    await waitFor(() => a.held() === 2, 2000, 'a holds the cap');
    const b = instance('b', 2);
    b.want(3, 0);
    await waitFor(() => a.held() === 1, 2000, 'a told of its part');
    const started = performance.now();
    await waitFor(() => b.held() === 1, 2000, "b's part");
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await server.client().hget(BUDGET_KEYS.leases('avatars'), 'a')).toMatch(/^1 /);
  });

  it('counts the calls an instance may start while its shrunk slice is on its way back: never over the cap', async () => {
    // Each instance spends through slots, as the upstream client does. a's answers come 30 ms late,
    // and while one is on its way (`duringAnswer`) a starts what its slots let it, as pages would.
    let duringAnswer = () => {};
    const spender = (name: string, delayMs = 0) => {
      const redis = server.client({ enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
      const budget = instance(name, 4, { redis });
      const slots = new Slots(
        () => budget.held(),
        100,
        (wanted) => budget.want(wanted, slots.inFlight),
      );
      budget.onChange(() => slots.wake());
      const lease = (redis as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>).leaseBudget!.bind(
        redis,
      );
      Object.assign(redis, {
        leaseBudget: async (...args: unknown[]) => {
          const answer = await lease(...args);
          if (delayMs > 0) {
            duringAnswer();
            await new Promise((resolve) => setTimeout(resolve, delayMs));
          }
          return answer;
        },
      });
      const calls: Release[] = [];
      const start = (n: number, waitMs: number) => {
        for (let i = 0; i < n; i++) void slots.acquire(waitMs).then((release) => release && calls.push(release));
      };
      return { budget, slots, calls, start };
    };
    const a = spender('a', 30);
    a.start(4, 2000);
    await waitFor(() => a.slots.inFlight === 4, 2000, "a's four calls");
    a.calls.splice(0, 2).forEach((release) => release()); // two end: a may start two more until it hears otherwise
    const b = spender('b');
    b.start(4, 3000); // b wants four: a's part shrinks to two
    duringAnswer = () => a.start(4 - a.slots.inFlight, 0);
    let peak = 0;
    const until = performance.now() + 1500;
    while (performance.now() < until) {
      peak = Math.max(peak, a.slots.inFlight + b.slots.inFlight);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    expect(peak).toBeLessThanOrEqual(4);
    for (const release of [...a.calls, ...b.calls]) release();
  });

  it("frees a dead instance's slice once its lease runs out", async () => {
    const connection = server.client({ enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => null });
    const dying = instance('dying', 3, { redis: connection });
    dying.want(3, 0);
    await waitFor(() => dying.held() === 3, 2000, 'the slice');
    connection.disconnect(); // no more renewals, no goodbye: as after a SIGKILL
    const survivor = instance('survivor', 3);
    survivor.want(3, 0);
    const started = performance.now();
    await waitFor(() => survivor.held() === 3, 5000, 'the freed slice');
    expect(performance.now() - started).toBeLessThan(TTL_MS + 4 * RENEW_MS + 200);
  });

  it('falls back to its share of the instances last seen the moment Redis is gone, the idle one too, and is rebuilt with nothing left over', async () => {
    const a = instance('a', 4);
    // b is slower to reconnect: a leases first from the emptied Redis, where b's calls are not.
    const b = instance('b', 4, {
      redis: server.client({ enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 600 }),
    });
    a.want(2, 0);
    b.want(2, 0);
    const bothSeen = () => a.usage(0).instances === 2 && b.usage(0).instances === 2;
    await waitFor(() => a.held() === 2 && b.held() === 2 && bothSeen(), 2000, 'two each, each seeing both');
    a.want(2, 2); // both of a's calls in flight, and both of b's
    b.want(2, 2);
    await server.stop();
    // At once, not at the lease's end: 4 / 2 instances last seen, each (an idle one can still call).
    await waitFor(() => a.held() === 2 && b.held() === 2, 1000, 'the fallback shares');
    a.want(4, 2);
    await server.start(); // empty: the leases are gone, b's two calls are not
    // Until every instance has leased again, no one takes more than its share: never over the cap.
    expect(await peakSum([a, b], 800)).toBeLessThanOrEqual(4);
    b.want(0, 0); // b's calls ended
    await waitFor(() => a.held() === 4, 5000, 'the budget rebuilt, a holding the whole cap');
    a.want(0, 0);
    const inspector = server.client();
    await waitFor(
      async () => Object.keys(await inspector.hgetall(BUDGET_KEYS.leases('avatars'))).length === 0,
      3000,
      'nothing held at rest',
    );
  });

  it('gives back at a graceful stop all but the calls still in flight: the next instance has them at once', async () => {
    const leaving = instance('leaving', 3);
    leaving.want(3, 0);
    await waitFor(() => leaving.held() === 3, 2000, 'the slice');
    await leaving.close();
    expect(await server.client().hgetall(BUDGET_KEYS.leases('avatars'))).toEqual({});
  });

  it("plans with its part of the cluster's open pages", () => {
    const budget = instance('a', 32, { share: () => 0.75 });
    expect(budget.expected()).toBe(24);
    expect(instance('b', 32, { share: () => 0 }).expected()).toBe(1);
  });
});
