import type { Redis } from 'ioredis';
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

  /** A connection to the test's Redis, as an instance has (it fails a command at once while Redis is gone). */
  const connection = () =>
    server.client({ enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 50 });

  /** An instance's budget for the avatars, on the test's Redis (a connection of its own, as an instance has). */
  const instance = (name: string, cap: number, options: Partial<ClusterBudgetOptions> = {}) => {
    const budget = new ClusterBudget({
      redis: connection(),
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

  /**
   * Counts the asks (lease scripts) sent on a connection from now on, by instance; the real script
   * on the real Redis still answers each. `pending`: asks sent and not answered yet.
   */
  const countAsks = (redis: Redis) => {
    const asks = { pending: 0, by: new Map<string, number>(), of: (name: string) => asks.by.get(name) ?? 0 };
    const client = redis as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const lease = client.leaseBudget!.bind(redis);
    client.leaseBudget = async (...args: unknown[]) => {
      const name = String(args[3]);
      asks.by.set(name, asks.of(name) + 1);
      asks.pending++;
      try {
        return await lease(...args);
      } finally {
        asks.pending--;
      }
    };
    return asks;
  };

  const ready = async (redis: Redis) => {
    await waitFor(() => redis.status === 'ready', 2000, 'the connection ready');
    return redis;
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
    const a = instance('a', 2, { ttlMs: 30_000, renewEveryMs: 50, renewContendedEveryMs: 10_000 });
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
    const a = instance('a', 2, { ttlMs: 30_000, renewEveryMs: 50, renewContendedEveryMs: 10_000 });
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

  it('asks for its slice the moment Redis is ready, not at its first renewal', async () => {
    const a = instance('a', 4, { ttlMs: 30_000, renewEveryMs: 10_000 });
    a.want(2, 0); // before the connection is up: this ask fails
    await waitFor(() => a.held() === 2 && a.usage(0).instances === 1, 1000, 'the slice, asked for once ready');
  });

  it('asks once when made on a connection already ready, and not again until something changes', async () => {
    // One connection for both services, as the platform has: the script is defined on it once.
    const redis = await ready(connection());
    const recommendations = instance('r', 4, {
      ttlMs: 30_000,
      redis,
      service: 'recommendations',
      renewEveryMs: 10_000,
    });
    await waitFor(() => recommendations.usage(0).instances === 1, 1000, 'the first budget leasing');
    const asks = countAsks(redis);
    const a = instance('a', 4, { ttlMs: 30_000, redis, renewEveryMs: 10_000 });
    await waitFor(() => a.usage(0).instances === 2, 1000, 'the second budget leasing');
    expect(asks.of('a')).toBe(1);
  });

  it("keeps each service's budget apart: a slice of one is no part of the other's cap", async () => {
    const avatars = instance('a', 2);
    const recommendations = instance('r', 2, { service: 'recommendations' });
    avatars.want(2, 0);
    recommendations.want(2, 0);
    await waitFor(() => avatars.held() === 2 && recommendations.held() === 2, 1000, 'the whole of each cap');
  });

  it('asks at once for new demand, one ask on its way at a time, and not for calls within what it asked for', async () => {
    const redis = connection();
    const a = instance('a', 4, { ttlMs: 30_000, redis, renewEveryMs: 10_000 });
    await waitFor(() => a.usage(0).instances === 1, 1000, 'the first lease');
    const asks = countAsks(redis);
    a.want(1, 0); // new demand: asked for at once
    a.want(2, 0); // more while that ask is on its way: asked for once it is answered
    a.want(3, 0);
    expect(asks.of('a')).toBe(1);
    await waitFor(() => a.held() === 3, 1000, 'all three');
    expect(asks.of('a')).toBe(2);
    a.want(3, 3); // the calls start, end: nothing new to ask for
    a.want(3, 3);
    a.want(2, 2);
    a.want(0, 0);
    expect(asks.of('a')).toBe(2);
  });

  it('starts and ends calls within its part of a contended cap without asking Redis for each', async () => {
    const redis = connection();
    const a = instance('a', 2, { ttlMs: 30_000, redis, renewContendedEveryMs: 10_000 });
    const asks = countAsks(redis);
    a.want(2, 0);
    await waitFor(() => a.held() === 2, 1000, 'a alone');
    const b = instance('b', 2);
    b.want(3, 0);
    await waitFor(() => b.usage(0).instances === 2, 1000, "b's ask");
    a.want(3, 0); // a hears of the contention
    await waitFor(() => a.held() === 1 && b.held() === 1 && asks.pending === 0, 2000, 'a part each');
    const before = asks.of('a');
    a.want(3, 1); // a call starts, within a's part
    a.want(3, 1);
    a.want(3, 0); // it ends, below a's part
    expect(asks.of('a')).toBe(before);
    a.want(4, 0); // more than a asked for: asked for at once
    expect(asks.of('a')).toBe(before + 1);
  });

  it('tells Redis at once of a slice that shrank with its demand, contended or not', async () => {
    const redis = connection();
    const a = instance('a', 2, { redis, ttlMs: 30_000, renewEveryMs: 2000 });
    const asks = countAsks(redis);
    a.want(2, 0);
    await waitFor(() => a.held() === 2, 1000, 'a holds the cap');
    a.want(1, 0); // less to do: its next renewal finds a smaller slice
    const from = asks.of('a');
    await waitFor(() => asks.of('a') > from, 3000, 'the renewal');
    // Recorded as 2 by that renewal; told at once, not at the next one two seconds later.
    const lease = () => server.client().hget(BUDGET_KEYS.leases('avatars'), 'a');
    await waitFor(async () => /^1 /.test((await lease()) ?? ''), 1500, 'the smaller slice in Redis');
  });

  it('asks no more often than its renewals while calls in flight outlast its shrunk part', async () => {
    const redis = connection();
    const a = instance('a', 2, { ttlMs: 30_000, redis, renewEveryMs: 10_000 });
    const asks = countAsks(redis);
    a.want(2, 0);
    await waitFor(() => a.held() === 2, 1000, 'a alone');
    a.want(2, 2); // both of a's slots in use
    const b = instance('b', 2);
    b.want(3, 0);
    await waitFor(() => b.usage(0).instances === 2, 1000, "b's ask");
    a.want(3, 2); // a wants more: it asks, and hears its part is 1
    await waitFor(() => a.held() === 1, 1000, 'a told of its part');
    const from = asks.of('a');
    const started = performance.now();
    await waitFor(() => performance.now() - started >= 500, 1000, 'half a second'); // its calls still in flight
    // Contended renewals come every 100 ms: 5 in half a second, not one per Redis round trip.
    expect(asks.of('a') - from).toBeLessThanOrEqual(8);
    expect(a.held()).toBe(1);
  });

  it('renews a contended lease ten times a second by default, or as often as it is told, and no more often', async () => {
    const redisA = connection();
    const redisB = connection();
    const a = instance('a', 2, { ttlMs: 30_000, redis: redisA, renewEveryMs: 10_000 });
    const b = instance('b', 2, { ttlMs: 30_000, redis: redisB, renewEveryMs: 10_000, renewContendedEveryMs: 20 });
    const asksA = countAsks(redisA);
    const asksB = countAsks(redisB);
    a.want(3, 0);
    await waitFor(() => a.held() === 2, 1000, 'a alone');
    b.want(3, 0);
    await waitFor(() => asksB.of('b') >= 1 && asksB.pending === 0, 1000, "b's ask");
    a.want(4, 0); // a hears of the contention
    await waitFor(() => a.held() === 1 && b.held() === 1, 1000, 'a part each');
    const renewals = async (asks: ReturnType<typeof countAsks>, name: string, n: number) => {
      const from = asks.of(name);
      const started = performance.now();
      await waitFor(() => asks.of(name) >= from + n, 2000, `${n} renewals of ${name}`);
      return performance.now() - started;
    };
    const [ofA, ofB] = await Promise.all([renewals(asksA, 'a', 3), renewals(asksB, 'b', 5)]);
    expect(ofA).toBeGreaterThanOrEqual(180); // every 100 ms
    expect(ofB).toBeLessThan(400); // every 20 ms (every 100 ms would take 400 or more)
    expect(ofB).toBeGreaterThanOrEqual(60);
  });

  it('trusts its lease until a margin before it runs out, and then starts nothing new while Redis answers', async () => {
    let clock = 0;
    // A lease of 600 ms is trusted for 450 ms from when it was asked for (a quarter of it to spare).
    const a = instance('a', 3, { now: () => clock, ttlMs: 600, renewEveryMs: 10_000 });
    a.want(3, 0);
    await waitFor(() => a.held() === 3, 1000, 'the slice');
    clock = 450;
    expect(a.held()).toBe(3);
    clock = 451; // this process stalled: its lease may have run out in Redis
    expect(a.held()).toBe(0);
  });

  it('falls back to its share the moment Redis is gone, not when its lease would run out, and rebuilds once it is back', async () => {
    const redis = connection();
    const a = instance('a', 4, { redis, ttlMs: 5000, renewEveryMs: 10_000 });
    a.want(2, 0);
    await waitFor(() => a.held() === 2, 1000, 'the slice');
    const asks = countAsks(redis);
    await server.stop();
    await waitFor(() => a.held() === 4, 500, 'its share of the one instance it saw: the whole cap');
    a.want(3, 0); // within its share: no ask (Redis is retried at the renewal, not at every call)
    a.want(4, 0);
    expect(asks.of('a')).toBe(0);
    await server.start();
    const inspector = server.client();
    await waitFor(
      async () => (await inspector.hget(BUDGET_KEYS.rebuild('avatars'), 'seen')) === '1',
      1000,
      'a rebuild for the one instance it saw',
    );
  });

  it('opens a rebuild once Redis answers again after a single ask it refused', async () => {
    const b = instance('b', 4, { ttlMs: 5000, renewEveryMs: 10_000 });
    await waitFor(() => b.usage(0).instances === 1, 1000, "b's lease");
    const a = instance('a', 4, { ttlMs: 5000, renewEveryMs: 10_000 });
    await waitFor(() => a.usage(0).instances === 2, 1000, 'a seeing both');
    let told = 0;
    a.onChange(() => told++);
    const admin = server.client();
    await admin.config('SET', 'maxmemory', '1'); // Redis full: it refuses the lease, the connection stays up
    try {
      a.want(1, 0);
      await waitFor(() => told === 1, 1000, 'the refusal');
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
    a.want(4, 0);
    await waitFor(() => told === 2, 1000, 'the answer');
    // The others may have spent their fallback share meanwhile: a share of the two instances a saw.
    expect(a.held()).toBe(2);
  });

  it('retries at its renewal interval while Redis is gone, not in a busy loop', async () => {
    const redis = connection();
    const a = instance('a', 4, { redis, renewEveryMs: 50 });
    a.want(2, 0);
    await waitFor(() => a.held() === 2, 1000, 'the slice');
    const asks = countAsks(redis);
    await server.stop();
    const [from, started] = [asks.of('a'), performance.now()];
    await waitFor(() => asks.of('a') >= from + 3, 1000, 'three asks');
    expect(performance.now() - started).toBeGreaterThanOrEqual(80);
  });

  it('retries at its renewal interval when Redis cannot be reached from its start', async () => {
    await server.stop();
    const redis = connection();
    instance('a', 4, { redis, renewEveryMs: 50, renewContendedEveryMs: 10_000 });
    const asks = countAsks(redis);
    await waitFor(() => asks.of('a') >= 2, 1000, 'two asks');
  });

  it("falls back to its share when Redis answers with errors, then opens a rebuild of its service's budget only", async () => {
    const ttlMs = 400; // trusted for 300 ms
    const a = instance('a', 4, { ttlMs });
    const b = instance('b', 4, { ttlMs });
    await waitFor(() => a.usage(0).instances === 2 && b.usage(0).instances === 2, 1000, 'both seen');
    a.want(4, 0);
    await waitFor(() => a.held() === 4, 1000, 'the whole cap');
    const admin = server.client();
    await admin.config('SET', 'maxmemory', '1'); // Redis full: every lease fails, the connection stays up
    try {
      await waitFor(() => a.held() === 2, 1000, 'its share of the two instances it saw');
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
    // Back: no one takes more than a share of two until every one has leased again...
    await waitFor(async () => (await admin.hget(BUDGET_KEYS.rebuild('avatars'), 'seen')) === '2', 1000, 'the rebuild');
    expect(a.held()).toBeLessThanOrEqual(2);
    // ...in its own service: the other's budget is whole at once.
    const recommendations = instance('r', 4, { service: 'recommendations', ttlMs });
    recommendations.want(4, 0);
    await waitFor(() => recommendations.held() === 4, 400, "the recommendations' whole cap");
  });

  it('once closed, asks no more and is told of nothing, even on a connection still shared', async () => {
    const redis = connection();
    const closed = instance('x', 4, { redis, service: 'recommendations' });
    const open = instance('y', 4, { redis });
    await waitFor(() => closed.usage(0).instances === 2 && open.usage(0).instances === 2, 1000, 'both leasing');
    let toldClosed = 0;
    let toldOpen = 0;
    closed.onChange(() => toldClosed++);
    open.onChange(() => toldOpen++);
    const asks = countAsks(redis);
    await closed.close(); // gives back its slice: one ask
    await closed.close();
    expect(asks.of('x')).toBe(1);
    toldClosed = 0;
    toldOpen = 0;
    await server.stop();
    await waitFor(() => toldOpen > 0, 1000, 'the open one told of the outage');
    expect(toldClosed).toBe(0);
  });

  it('records as held what it may still start while a smaller slice is on its way to it', async () => {
    const redis = connection();
    const a = instance('a', 4, { ttlMs: 30_000, redis, renewEveryMs: 10_000, renewContendedEveryMs: 10_000 });
    a.want(4, 0);
    await waitFor(() => a.held() === 4, 1000, 'the whole cap');
    const inspector = server.client();
    const recorded: (string | null)[] = [];
    const lease = (redis as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>).leaseBudget!.bind(
      redis,
    );
    Object.assign(redis, {
      leaseBudget: async (...args: unknown[]) => {
        const answer = await lease(...args);
        recorded.push(await inspector.hget(BUDGET_KEYS.leases('avatars'), 'a')); // before a has the answer
        return answer;
      },
    });
    const b = instance('b', 4, { ttlMs: 30_000, renewEveryMs: 10_000 });
    b.want(4, 0);
    await waitFor(async () => (await inspector.hget(BUDGET_KEYS.leases('avatars'), 'b')) !== null, 1000, "b's ask");
    a.want(5, 0); // a's part is now 2, but until the answer reaches it a may start calls up to 4
    await waitFor(() => a.held() === 2 && b.held() === 2, 1000, 'a part each');
    expect(recorded[0]).toMatch(/^4 5 /);
    expect(recorded.at(-1)).toMatch(/^2 5 /);
  });

  it("plans with its part of the cluster's open pages", () => {
    const budget = instance('a', 32, { share: () => 0.75 });
    expect(budget.expected()).toBe(24);
    expect(instance('b', 32, { share: () => 0 }).expected()).toBe(1);
  });
});
