/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { startTestApp, waitFor, type TestApp } from '../helpers/app.js';
import { launchChromium, PUSH_SHOWS_WITHIN_MS, wholeAndLive } from '../helpers/browser.js';

const TABS = 8;
const CAP = 2;
const LATENCY = 300;

// A real browser is slow under load (25 page actions took 28 s with two busy loops beside the
// suite): a timeout three times that. See BROWSER_TIMEOUT_MS in scripts/test-under-load.mjs.
describe(
  'a flip with many tabs open, against a slow third party with a small concurrency cap',
  { timeout: 90_000 },
  () => {
    let app: TestApp;
    let browser: Browser;
    const contexts: BrowserContext[] = [];
    const tabs: { page: Page; requests: string[] }[] = [];

    beforeAll(async () => {
      [app, browser] = await Promise.all([
        // A timeout well above the third party's latency: on a busy machine a 300 ms call must not
        // turn into a third-party failure (a fallback that rightly does not catch up).
        startTestApp({
          UPSTREAM_MAX_CONCURRENCY: String(CAP),
          SIMULATOR_LATENCY_MS: String(LATENCY),
          UPSTREAM_TIMEOUT_MS: '3000',
          RECOMMENDATIONS_CACHE_TTL_MS: '0',
        }),
        launchChromium(),
      ]);
      // One context per tab: each tab is a distinct viewer (its own cookie), as on a launch day. All
      // opened at once, as readers arrive: the pages beyond the third party's capacity come back
      // later for their live content (what the first test checks), so this waits for capacity once.
      const opened = await Promise.all(
        Array.from({ length: TABS }, async (_, i) => {
          const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
          const page = await context.newPage();
          const requests: string[] = [];
          page.on('request', (request) => requests.push(request.url()));
          await page.goto(`${app.url}/?user=tab-${i}`);
          await page.waitForSelector('body[data-socket="connected"]');
          await page.evaluate(() => {
            (window as any).catchingUpSeen = false;
            new MutationObserver(() => {
              if (document.getElementById('live')?.dataset.catchingUp === 'true') (window as any).catchingUpSeen = true;
            }).observe(document.getElementById('live')!, { attributes: true, attributeFilter: ['data-catching-up'] });
          });
          return { context, page, requests };
        }),
      );
      for (const { context, page, requests } of opened) {
        contexts.push(context);
        tabs.push({ page, requests });
      }
    }, 60_000); // eight tabs at once: ~6 s here, a timeout well above for a busy machine
    afterAll(async () => {
      for (const context of contexts) await context.close();
      await browser?.close();
      await app?.stop();
    });

    it("page loads beyond the third party's capacity come at once, then catch up to live", async () => {
      // A few seconds here; once over 20 s with two busy loops beside the whole suite (the pacing
      // follows this process's own slowness), hence a bound well above.
      await waitFor(
        async () =>
          (await Promise.all(tabs.map(({ page }) => wholeAndLive(page, app.simulator!.origin)))).every(Boolean),
        60_000,
        'every tab live',
      );
      expect(app.simulator!.stats().peakInFlightBy.avatars).toBeLessThanOrEqual(CAP);
      expect(app.simulator!.stats().peakInFlightBy.recommendations).toBeLessThanOrEqual(CAP);
    });

    it('a kill reaches every tab in place with no request to our server or the third party', async () => {
      for (const tab of tabs) tab.requests.length = 0;
      app.simulator!.resetStats();
      await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
      for (const { page } of tabs) {
        await page.waitForSelector('#feed[data-show-avatars="false"]', { timeout: PUSH_SHOWS_WITHIN_MS });
        await page.waitForSelector('#recommendations[data-source="fallback"]');
        expect(await page.isVisible('#paused-banner')).toBe(true);
        expect(await page.textContent('#recommendations .note')).toBe('Personalized picks are paused.');
        const sources = await page.$$eval('img.avatar', (imgs) =>
          imgs.map((img) => new URL((img as HTMLImageElement).src).pathname),
        );
        expect(new Set(sources)).toEqual(new Set(['/static/img/fallback-avatar.svg']));
      }
      // Static files aside (the fallback avatar image), not one request: the kill cost one push.
      for (const { requests } of tabs)
        expect(requests.filter((url) => !new URL(url).pathname.startsWith('/static/'))).toEqual([]);
      expect(app.simulator!.stats().total).toBe(0);
    });

    it("a restore brings every tab back fully live at the third party's pace, catching up visibly, never over the cap", async () => {
      app.simulator!.resetStats();
      const restoredAt = performance.now();
      await app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
      await waitFor(
        async () =>
          (await Promise.all(tabs.map(({ page }) => wholeAndLive(page, app.simulator!.origin)))).every(Boolean),
        60_000,
        'every tab live',
      );
      const tookMs = performance.now() - restoredAt;
      const stats = app.simulator!.stats();
      expect(stats.peakInFlightBy.avatars).toBeLessThanOrEqual(CAP);
      expect(stats.peakInFlightBy.recommendations).toBeLessThanOrEqual(CAP);
      expect(app.upstream.map((client) => client.breakerState())).toEqual(['closed', 'closed']);
      for (const { page } of tabs) {
        expect(await page.evaluate(() => (window as any).catchingUpSeen)).toBe(true);
        expect(await page.isHidden('#paused-banner')).toBe(true);
        expect(await page.isHidden('#catching-up-banner')).toBe(true);
        expect(await page.getAttribute('#live', 'data-catching-up')).toBeNull();
      }
      // Eight tabs' recommendations at 2 in flight and ~300 ms each: ~1.2 s of the third party's time.
      const capacityMs = (stats.requests.recommendations * LATENCY) / CAP;
      console.log(
        `restore of ${TABS} Chromium tabs at cap ${CAP}, ~${LATENCY} ms: all live in ${Math.round(tookMs)} ms (capacity needs ~${Math.round(capacityMs)} ms)`,
      );
      // The pace is the slower of the third party and this process's own renders (the pacer's
      // renderer): with eight Chromium tabs and two busy loops on two cores (npm run test:load), the
      // renders are the slower, and a restore took 7.6 s once against the third party's ~1.2 s. The
      // bound catches pacing gone wrong (a fixed spread, a page left short), not a busy machine.
      expect(tookMs).toBeLessThan(capacityMs * 3 + 10_000);
    });
  },
);
