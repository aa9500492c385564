/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { startSimulator, type Simulator } from '../../server/simulator/simulator.js';
import { TestRedis } from '../../testing/redis.js';
import { startTestApp, TEST_TOKEN, waitFor, type TestApp } from '../helpers/app.js';
import { launchChromium, signInAdmin, wholeAndLive } from '../helpers/browser.js';

const CAP = 2;
const LATENCY_MS = 300;
/** Tabs per instance: spread unevenly, as a load balancer's luck leaves them. */
const SPLIT = [9, 3];

// Two instances, a Redis, a third party and twelve Chromium tabs; a restore at 300 ms a call and
// two calls at once takes a few seconds here, many more on a busy machine.
describe('a restore across two instances sharing one third-party budget', { timeout: 120_000 }, () => {
  let redis: TestRedis;
  let simulator: Simulator;
  let instances: TestApp[];
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const tabs: { page: Page; navigations: number }[] = [];

  beforeAll(async () => {
    [redis, simulator, browser] = await Promise.all([
      TestRedis.create({ persist: false }),
      startSimulator({ knobs: { latencyMs: LATENCY_MS } }),
      launchChromium(),
    ]);
    const env = {
      REDIS_URL: redis.url,
      UPSTREAM_MAX_CONCURRENCY: String(CAP),
      AVATAR_API_URL: simulator.avatarApiUrl,
      RECOMMENDATIONS_API_URL: simulator.recommendationsApiUrl,
      // Well above the third party's latency: on a busy machine a slow call must not be a failure.
      UPSTREAM_TIMEOUT_MS: '3000',
      RECOMMENDATIONS_CACHE_TTL_MS: '0',
    };
    instances = [await startTestApp(env), await startTestApp(env)];
    await instances[0]!.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    for (const [index, count] of SPLIT.entries()) {
      for (let n = 0; n < count; n++) {
        const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
        const page = await context.newPage();
        const tab = { page, navigations: 0 };
        page.on('framenavigated', (frame) => {
          if (frame === page.mainFrame()) tab.navigations++;
        });
        await page.goto(`${instances[index]!.url}/?user=reader-${index}-${n}`);
        await page.waitForSelector('body[data-socket="connected"]');
        contexts.push(context);
        tabs.push(tab);
      }
    }
  }, 90_000);
  afterAll(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    for (const app of instances ?? []) await app.stop();
    await simulator?.close();
    await redis?.destroy();
  });

  it('brings every tab on both back live, with no reload, and the third party never sees more than the cap from both together', async () => {
    for (const { page } of tabs) await page.waitForSelector('#feed[data-show-avatars="false"]');
    // The operator watches from the instance with fewer pages: it shows the cluster's calls in flight.
    const admin = await (await browser.newContext()).newPage();
    contexts.push(admin.context());
    await signInAdmin(admin, instances[1]!.url, TEST_TOKEN);
    const shown: number[] = [];
    await admin.exposeFunction('budgetShown', (inUse: string) => shown.push(Number(inUse)));
    await admin.evaluate(() => {
      // The card is drawn anew on every state: watch it whole, read the figure as it is now.
      const report = () => {
        const count = document.querySelector('[data-budget="avatars"] [data-in-use]');
        if (count) void (window as unknown as { budgetShown(v: string): void }).budgetShown(count.textContent);
      };
      const card = document.getElementById('upstream-body')!;
      new MutationObserver(report).observe(card, { childList: true, characterData: true, subtree: true });
    });
    simulator.resetStats();
    await instances[0]!.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
    await waitFor(
      async () => (await Promise.all(tabs.map(({ page }) => wholeAndLive(page, simulator.origin)))).every(Boolean),
      90_000,
      'every tab live',
    );
    const stats = simulator.stats();
    expect(stats.peakInFlightBy.avatars).toBeLessThanOrEqual(CAP);
    expect(stats.peakInFlightBy.recommendations).toBeLessThanOrEqual(CAP);
    // Each tab's own avatar and recommendations were fetched: the cap was used, not bypassed.
    expect(stats.requests.recommendations).toBeGreaterThanOrEqual(tabs.length);
    for (const tab of tabs) expect(tab.navigations).toBe(1); // the first load only: no reload
    expect(await admin.locator('[data-budget="avatars"]').getAttribute('data-scope')).toBe('cluster');
    expect(Math.max(...shown)).toBeGreaterThan(0);
    expect(Math.max(...shown)).toBeLessThanOrEqual(CAP);
    // Both instances hold nothing once the restore is done.
    const inspector = redis.client();
    await waitFor(
      async () => Object.keys(await inspector.hgetall('killswitch:budget:avatars:leases')).length === 0,
      10_000,
      'the budget given back',
    );
  });
});
