/// <reference lib="dom" />
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { TEST_TOKEN, waitFor } from '../helpers/app.js';
import { adminPagesForThisBlock, appAndBrowserForThisBlock, signInAdmin } from '../helpers/browser.js';

// See BROWSER_TIMEOUT_MS in scripts/test-under-load.mjs.
describe('launch control tells the operator what matters', { timeout: 90_000 }, () => {
  const ctx = appAndBrowserForThisBlock({ RECOMMENDATIONS_CACHE_TTL_MS: '0', UPSTREAM_TIMEOUT_MS: '1000' });
  const admin = adminPagesForThisBlock(ctx);
  const text = (page: Page, selector: string) => page.locator(selector).innerText();

  it('an outage shows at the top, in words and colour, with the Kill button in the alert', async () => {
    await ctx.app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
    const page = await admin();
    await page.waitForSelector('#health-services li[data-service="avatars"]');
    expect(await page.isHidden('#outage-alert')).toBe(true);
    ctx.app.simulator!.setKnobs({ mode: 'fail' });
    for (let n = 0; n < 8; n++) await ctx.app.request(`/?user=outage-${n}`);
    await page.waitForSelector('#outage-alert:not([hidden])');
    // The alert is the first thing on the page, above the switch.
    const alertTop = await page.locator('#outage-alert').evaluate((node) => node.getBoundingClientRect().top);
    const switchTop = await page.locator('#switch-title').evaluate((node) => node.getBoundingClientRect().top);
    expect(alertTop).toBeLessThan(switchTop);
    expect(await text(page, '#outage-text')).toMatch(
      /^The third party is failing \(.*the breaker for (avatars|recommendations) opened \d+ s ago.*\)\. Kill the switch/,
    );
    // Each service's state comes with its own breaker: under load the second can open a sample later.
    await page.waitForSelector('#health-services li[data-service="recommendations"][data-health="failing"]', {
      timeout: 5000,
    });
    // The figures come with the next second's sample.
    const figures =
      /^recommendations: Failing \d+ % of \d+ calls failed, \d+ ms a call \(timeout 1000 ms\); breaker open for \d+ s$/;
    await waitFor(
      async () => figures.test(await text(page, '#health-services li[data-service="recommendations"]')),
      5000,
      'the failed share over the last minute',
    );
    await page.click('#outage-kill');
    await page.waitForSelector('#confirm-dialog[open]');
    await page.click('#confirm-button');
    await page.waitForSelector('#switch-title[data-state="killed"]');
    await waitFor(
      async () => /The switch is killed: no calls are made\./.test(await text(page, '#outage-text')),
      5000,
      'the alert to say killed',
    );
    expect(await page.isHidden('#outage-kill')).toBe(true);
  });

  it('during a kill, the calls it saves count up as they are saved, over a stated window', async () => {
    await ctx.app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    const page = await admin();
    const notMade = '#upstream-body [data-service="recommendations"] [data-counts="not-made"]';
    await page.waitForSelector(notMade);
    expect(await text(page, notMade)).toMatch(/^not made, last 60 s/);
    const killedCount = async () => Number(/(\d+) killed/.exec(await text(page, notMade))?.[1] ?? -1);
    const before = await killedCount();
    for (let n = 0; n < 5; n++) await ctx.app.request(`/?user=saved-${n}`);
    // No admin_state is pushed for page views: the per-second samples carry them.
    await waitFor(async () => (await killedCount()) >= before + 5, 5000, 'the saved calls to show');
  });
});

describe('a viewer never sees a broken image', { timeout: 90_000 }, () => {
  const ctx = appAndBrowserForThisBlock();

  it('with the image host down (the API answering), every avatar becomes the fallback in place', async () => {
    await ctx.app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
    ctx.app.simulator!.setKnobs({ mode: 'images-down' });
    const context = await ctx.browser.newContext({ viewport: { width: 1100, height: 800 } });
    try {
      const page = await context.newPage();
      await page.goto(`${ctx.app.url}/?user=maya`);
      await page.waitForSelector('body[data-socket="connected"]');
      expect(await page.getAttribute('#feed', 'data-show-avatars')).toBe('true');
      const avatars = () =>
        page.$$eval('img.avatar', (imgs) =>
          imgs.map((img) => ({
            src: (img as HTMLImageElement).getAttribute('src'),
            loaded: (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0,
          })),
        );
      await waitFor(
        async () => (await avatars()).every((avatar) => avatar.loaded),
        10_000,
        'every avatar to show an image',
      );
      const shown = await avatars();
      expect(shown.length).toBeGreaterThan(3);
      expect(shown.every((avatar) => avatar.src === '/static/img/fallback-avatar.svg')).toBe(true);
    } finally {
      await context.close();
      ctx.app.simulator!.setKnobs({ mode: 'normal' });
    }
  });
});

describe('a phone gets a phone layout', { timeout: 90_000 }, () => {
  const ctx = appAndBrowserForThisBlock();
  const phone = { width: 390, height: 844 };

  it('launch control: the flags and Explain as cards, every control on screen, no sideways scroll', async () => {
    const context = await ctx.browser.newContext({ viewport: phone });
    try {
      const page = await context.newPage();
      await signInAdmin(page, ctx.app.url, TEST_TOKEN);
      await page.fill('#explain-form input[name=user]', 'maya');
      await page.click('#explain-form button[type=submit]');
      await page.waitForSelector('#explain-body tr');
      const offScreen = await page.evaluate(() =>
        [...document.querySelectorAll('#flags-body td, #flags-body button, #explain-body td')]
          .filter((node) => {
            const box = node.getBoundingClientRect();
            return box.width > 0 && (box.left < 0 || box.right > window.innerWidth);
          })
          .map((node) => node.textContent?.trim().slice(0, 30)),
      );
      expect(offScreen).toEqual([]);
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
      // Each cell says what it is: the table's heading, read on the card.
      const label = await page.$eval(
        '#flags-body tr td:nth-child(4)',
        (td) => getComputedStyle(td, '::before').content,
      );
      expect(label).toBe('"Targeting"');
      expect(await page.locator('#flags-body tr').count()).toBeGreaterThanOrEqual(4);
    } finally {
      await context.close();
    }
  });

  it('the feed: the viewer picker labelled and readable', async () => {
    const context = await ctx.browser.newContext({ viewport: phone });
    try {
      const page = await context.newPage();
      await page.goto(`${ctx.app.url}/?user=maya`);
      const label = await page.locator('label[for="viewer-select"]').boundingBox();
      expect(label?.width).toBeGreaterThan(40);
      const fits = await page.$eval('#viewer-select', (select) => {
        const el = select as HTMLSelectElement;
        return { width: el.getBoundingClientRect().width, right: el.getBoundingClientRect().right };
      });
      expect(fits.width).toBeGreaterThan(200);
      expect(fits.right).toBeLessThanOrEqual(phone.width);
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    } finally {
      await context.close();
    }
  });
});
