import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdminState, BudgetState } from '../../protocol/wire.js';
import { nextEvent, startTestApp, startTwoInstances, TEST_TOKEN, waitFor, type TestApp } from '../helpers/app.js';

/** One gauge's value in /metrics, or undefined when the series is not there. */
async function gauge(app: TestApp, name: string, labels: string): Promise<number | undefined> {
  const text = await (await fetch(`${app.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

/** What the launch-control page shows of each service's budget, as a signed-in admin loads it. */
async function adminBudgets(app: TestApp): Promise<Record<string, BudgetState>> {
  const { cookie } = await app.signIn();
  const { text } = await app.request('/admin', { headers: { cookie } });
  const state = JSON.parse(
    text.match(/<script type="application\/json" id="initial-state">(.*?)<\/script>/s)![1]!,
  ) as AdminState;
  return Object.fromEntries(state.upstream.map((service) => [service.service, service.budget]));
}

describe("the third party's budget, seen (with Redis: the cluster's)", { timeout: 30_000 }, () => {
  let cluster: Awaited<ReturnType<typeof startTwoInstances>>;
  beforeAll(async () => {
    // Slow calls: the first page's seven avatar calls stay in flight, three at a time, for seconds
    // (longer than an idle instance's one renewal a second, which is when it hears of them).
    cluster = await startTwoInstances({
      UPSTREAM_MAX_CONCURRENCY: '3',
      SIMULATOR_LATENCY_MS: '2500',
      UPSTREAM_TIMEOUT_MS: '6000',
    });
  });
  afterAll(() => cluster.stop());

  it("shows on every instance the calls in flight across the cluster against its cap, and each one's slice", async () => {
    const { a, b } = cluster;
    const page = a.request('/?user=budget-watcher');
    // b makes no call, yet sees a's: the cap and what is in use are the cluster's.
    await waitFor(
      async () => (await gauge(b, 'upstream_budget_in_use', 'service="avatars",scope="cluster"')) === 3,
      5000,
      "a's three calls seen from b",
    );
    expect(await gauge(b, 'upstream_budget_cap', 'service="avatars",scope="cluster"')).toBe(3);
    expect(await gauge(a, 'upstream_budget_held', 'service="avatars"')).toBe(3);
    expect(await gauge(b, 'upstream_budget_held', 'service="avatars"')).toBe(0);
    expect((await adminBudgets(b)).avatars).toEqual({ scope: 'cluster', cap: 3, held: 0, inUse: 3, instances: 2 });
    await page;
    // At rest nothing is held nor in use, here or there.
    for (const app of [a, b])
      await waitFor(
        async () => (await gauge(app, 'upstream_budget_in_use', 'service="avatars",scope="cluster"')) === 0,
        5000,
        'the budget given back',
      );
    expect(await gauge(a, 'upstream_budget_held', 'service="avatars"')).toBe(0);
  });

  it('sends the launch-control page each second the calls in flight and the cap, per service', async () => {
    const socket = await cluster.b.socket({ auth: { role: 'admin', token: TEST_TOKEN } });
    const [sample] = await nextEvent(socket, 'admin_stats', 3000);
    socket.close();
    expect(sample!.budget).toEqual({ avatars: { inUse: 0, cap: 3 }, recommendations: { inUse: 0, cap: 3 } });
  });
});

describe("the third party's budget, seen (without Redis: this instance's)", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ UPSTREAM_MAX_CONCURRENCY: '5' });
  });
  afterAll(() => app.stop());

  it('is the whole cap, held here, for this instance alone', async () => {
    await app.request('/?user=alone');
    expect(await gauge(app, 'upstream_budget_cap', 'service="recommendations",scope="instance"')).toBe(5);
    expect(await gauge(app, 'upstream_budget_held', 'service="recommendations"')).toBe(5);
    expect(await gauge(app, 'upstream_budget_in_use', 'service="recommendations",scope="instance"')).toBe(0);
    expect((await adminBudgets(app)).recommendations).toEqual({
      scope: 'instance',
      cap: 5,
      held: 5,
      inUse: 0,
      instances: 1,
    });
  });
});

describe('an instance that has just started, with Redis', () => {
  let cluster: Awaited<ReturnType<typeof startTwoInstances>>;
  beforeAll(async () => {
    cluster = await startTwoInstances();
  });
  afterAll(() => cluster.stop());

  it('serves its first page whole and live: its slice is leased as soon as Redis is ready, not at the first renewal', async () => {
    const { text } = await cluster.a.request('/?user=first-of-the-day');
    expect(text).toContain('id="recommendations" class="card recs" data-source="live"');
    expect(text).not.toContain('data-turn=');
  });
});
