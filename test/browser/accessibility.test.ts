/// <reference lib="dom" />
import { describe, expect, it } from 'vitest';
import { KILL_SWITCH, THEME } from '../../server/flags/catalog.js';
import { TEST_TOKEN } from '../helpers/app.js';
import { appAndBrowserForThisBlock, seriousViolations, signInAdmin } from '../helpers/browser.js';

const VIEWPORTS = { phone: { width: 390, height: 844 }, laptop: { width: 1280, height: 800 } };

// See BROWSER_TIMEOUT_MS in scripts/test-under-load.mjs.
describe(
  'accessibility of both pages, live and killed, in every theme, on a phone and a laptop',
  { timeout: 90_000 },
  () => {
    const ctx = appAndBrowserForThisBlock();

    for (const [device, viewport] of Object.entries(VIEWPORTS)) {
      for (const theme of ['light', 'dark', 'aurora']) {
        it(`${device}, ${theme}: no critical or serious axe-core violation, and no sideways scroll, live or killed`, async () => {
          const found: string[] = [];
          // CSP allows our own scripts only: axe-core is injected with the page's CSP bypassed.
          const context = await ctx.browser.newContext({ viewport, bypassCSP: true });
          const feed = await context.newPage();
          const admin = await context.newPage();
          await signInAdmin(admin, ctx.app.url, TEST_TOKEN);
          await ctx.app.patchFlag(THEME, { defaultVariant: theme });
          for (const state of ['ENABLED', 'DISABLED']) {
            await ctx.app.patchFlag(KILL_SWITCH, { state });
            await feed.goto(`${ctx.app.url}/?user=maya`);
            await feed.waitForSelector('body[data-socket="connected"]');
            await admin.reload();
            await admin.waitForSelector('body[data-socket="connected"]');
            for (const [name, page] of [
              ['feed', feed],
              ['admin', admin],
            ] as const) {
              for (const violation of await seriousViolations(page)) found.push(`${name} ${state}: ${violation}`);
              const overflow = await page.evaluate(
                () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
              );
              if (overflow > 0) found.push(`${name} ${state}: ${overflow} px of sideways scroll`);
            }
          }
          await context.close();
          await ctx.app.patchFlag(THEME, { defaultVariant: 'light' });
          await ctx.app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
          expect(found).toEqual([]);
        });
      }
    }

    it('on a phone, a kill and a restore move nothing the reader is looking at; the header is two rows at most; the banner needs no emoji font', async () => {
      const context = await ctx.browser.newContext({ viewport: VIEWPORTS.phone });
      const feed = await context.newPage();
      await feed.goto(`${ctx.app.url}/?user=maya`);
      await feed.waitForSelector('body[data-socket="connected"]');
      // Every layout shift from here on, as Chromium scores them for Cumulative Layout Shift.
      await feed.evaluate(() => {
        const seen: PerformanceEntry[] = [];
        const observer = new PerformanceObserver((list) => seen.push(...list.getEntries()));
        observer.observe({ type: 'layout-shift' });
        (window as any).layoutShifts = { observer, seen };
      });
      // The reader at the top of the feed: there, no scroll anchoring can hide a banner pushing it down.
      await ctx.app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
      await feed.waitForSelector('#paused-banner', { state: 'visible' });
      await ctx.app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
      await feed.waitForSelector('#paused-banner', { state: 'hidden' });
      await feed.waitForSelector('#recommendations[data-source="live"]', { timeout: 10_000 });
      // A shift is scored when the frame that shows it is rendered: two frames later, every entry of
      // the swap exists, and takeRecords hands over the ones the observer has not delivered yet.
      const shifts: number[] = await feed.evaluate(async () => {
        for (let i = 0; i < 2; i++) await new Promise((resolve) => requestAnimationFrame(resolve));
        const { observer, seen } = (window as any).layoutShifts as {
          observer: PerformanceObserver;
          seen: PerformanceEntry[];
        };
        return [...seen, ...observer.takeRecords()]
          .filter((entry: any) => !entry.hadRecentInput)
          .map((entry: any) => entry.value);
      });
      expect(shifts.reduce((sum, value) => sum + value, 0)).toBeLessThan(0.01);

      const header = await feed.locator('header.topbar').boundingBox();
      // Two rows at most (the viewer picker has a row of its own, labelled and readable): under 11 %
      // of the screen.
      expect(header!.height).toBeLessThanOrEqual(92);
      // Drawn icons, not glyphs: nothing depends on a font this machine may not have.
      expect(await feed.locator('#paused-banner .banner-icon').evaluate((node) => node.tagName.toLowerCase())).toBe(
        'svg',
      );
      await context.close();
    });
  },
);
