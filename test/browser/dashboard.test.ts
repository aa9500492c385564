/// <reference lib="dom" />
import { describe, expect, it } from 'vitest';
import { KILL_SWITCH, THEME } from '../../server/flags/catalog.js';
import { sleep, TEST_TOKEN } from '../helpers/app.js';
import { appAndBrowserForThisBlock, signInAdmin } from '../helpers/browser.js';

// A real browser is slow under load (25 page actions took 28 s with two busy loops beside the
// suite): a timeout three times that. See BROWSER_TIMEOUT_MS in scripts/test-under-load.mjs.
describe('the launch dashboard in a real browser', { timeout: 90_000 }, () => {
  const ctx = appAndBrowserForThisBlock({ RECOMMENDATIONS_CACHE_TTL_MS: '0' });

  it('charts third-party calls live, marks the flip, and shows the call rate fall to zero after a kill', async () => {
    const page = await ctx.browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(String(error)));
    await signInAdmin(page, ctx.app.url, TEST_TOKEN);

    // Traffic: a page view every 50 ms, each one calling the third party while live.
    let running = true;
    const traffic = (async () => {
      for (let i = 0; running; i++) {
        await fetch(`${ctx.app.url}/?user=dash-${i}`).then((r) => r.text());
        await sleep(50);
      }
    })();
    const callsPerSecond = async () => Number(await page.textContent('#calls-per-second'));
    // One sample with both: calls and page views (read together; under load a second can pass
    // with no page view finished, so a later read alone may see 0).
    const sample = await page.waitForFunction(
      () => {
        const calls = Number(document.getElementById('calls-per-second')?.textContent);
        const views = Number(document.getElementById('views-per-second')?.textContent);
        return calls > 0 && views > 0 ? { calls, views } : false;
      },
      undefined,
      { timeout: 15_000 },
    );
    expect(await sample.jsonValue()).toEqual({ calls: expect.any(Number), views: expect.any(Number) });

    await ctx.app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    // A second without a call, and none in flight: calls are counted as they end, so under load a
    // call made before the kill can end a second or two after it. From then on, no call is made.
    await page.waitForFunction(
      () =>
        document.getElementById('calls-per-second')?.textContent === '0' &&
        document.querySelectorAll('[data-in-use]').length > 0 &&
        [...document.querySelectorAll('[data-in-use]')].every((count) => count.textContent === '0'),
      undefined,
      { timeout: 15_000 },
    );
    // And the next sample too (each one redraws the figure, even with the same text).
    await page.evaluate(
      () =>
        new Promise<void>((resolve) =>
          new MutationObserver((_, observer) => {
            observer.disconnect();
            resolve();
          }).observe(document.getElementById('calls-per-second')!, {
            childList: true,
            characterData: true,
            subtree: true,
          }),
        ),
    );
    expect(await callsPerSecond()).toBe(0);
    // Pages are still served: a sample with page views and no call.
    await page.waitForFunction(
      () =>
        document.getElementById('calls-per-second')?.textContent === '0' &&
        Number(document.getElementById('views-per-second')?.textContent) > 0,
      undefined,
      { timeout: 15_000 },
    );
    await page
      .waitForSelector('#chart-calls[data-flips-drawn="1"]', { timeout: 10_000 })
      .catch(async (error: unknown) => {
        // Say what the page had instead: the marks drawn, and the audit it was given.
        const seen = await page.evaluate(() => ({
          flipsDrawn: document.getElementById('chart-calls')?.dataset.flipsDrawn,
          audit: document.getElementById('audit-list')?.textContent?.trim().slice(0, 300),
          now: new Date().toISOString(),
        }));
        throw new Error(`the kill was not marked on the calls chart: ${JSON.stringify(seen)}`, { cause: error });
      });
    running = false;
    await traffic;
    expect(errors).toEqual([]);
    await page.close();
  });

  it("follows a live theme change in the charts' colours, and explains its markers and its window", async () => {
    const page = await ctx.browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(String(error)));
    await signInAdmin(page, ctx.app.url, TEST_TOKEN);
    await page.waitForSelector('#chart-calls[data-theme-drawn="light"]');
    await ctx.app.patchFlag(THEME, { defaultVariant: 'dark' });
    // Redrawn at the next second's sample, in the dark theme's colours.
    for (const id of ['chart-calls', 'chart-traffic', 'chart-latency'])
      await page.waitForSelector(`#${id}[data-theme-drawn="dark"]`, { timeout: 5000 });
    expect(await page.locator('#chart-legend').innerText()).toMatch(
      /^Each point is one second; the charts keep the last five minutes\. Dashed lines mark flips: red a kill, green a restore/,
    );
    expect(await page.locator('#latency-label').innerText()).toMatch(/^ms per call, last second \(timeout \d+ ms\)$/);
    await ctx.app.patchFlag(THEME, { defaultVariant: 'light' });
    expect(errors).toEqual([]);
    await page.close();
  });
});
