import { describe, expect, it } from 'vitest';
import { KILL_SWITCH, THEME } from '../../server/flags/catalog.js';
import { TEST_TOKEN } from '../helpers/app.js';
import { appAndBrowserForThisBlock, signInAdmin } from '../helpers/browser.js';
import { lowContrastText } from '../helpers/contrast.js';

const VIEWPORTS = { phone: { width: 390, height: 844 }, laptop: { width: 1280, height: 800 } };

// See BROWSER_TIMEOUT_MS in scripts/test-under-load.mjs.
describe('every text readable: contrast computed from the colours the pages use', { timeout: 90_000 }, () => {
  const ctx = appAndBrowserForThisBlock();

  for (const theme of ['light', 'dark', 'aurora']) {
    it(`${theme}: both pages, live and killed, laptop and phone: text at 4.5:1 over what is under it`, async () => {
      await ctx.app.patchFlag(THEME, { defaultVariant: theme });
      const found: string[] = [];
      for (const [device, viewport] of Object.entries(VIEWPORTS)) {
        const context = await ctx.browser.newContext({ viewport, reducedMotion: 'reduce' });
        try {
          const feed = await context.newPage();
          const admin = await context.newPage();
          await signInAdmin(admin, ctx.app.url, TEST_TOKEN);
          for (const state of ['ENABLED', 'DISABLED']) {
            await ctx.app.patchFlag(KILL_SWITCH, { state });
            await feed.goto(`${ctx.app.url}/?user=maya`);
            await feed.waitForSelector('body[data-socket="connected"]');
            await admin.waitForSelector(`#switch-title[data-state="${state === 'ENABLED' ? 'live' : 'killed'}"]`);
            for (const [name, page] of [
              ['feed', feed],
              ['admin', admin],
            ] as const)
              for (const low of await lowContrastText(page))
                found.push(
                  `${device} ${state} ${name}: "${low.text}" (${low.where}) ${low.ratio}:1, ${low.color} on ${low.background}`,
                );
          }
        } finally {
          await context.close();
        }
      }
      expect(found).toEqual([]);
    });
  }
});

describe('focus is visible', { timeout: 90_000 }, () => {
  const ctx = appAndBrowserForThisBlock();

  it('a ring of at least 2 px in the theme accent, on the big switch too, in every theme', async () => {
    const context = await ctx.browser.newContext({ viewport: VIEWPORTS.laptop });
    try {
      const admin = await context.newPage();
      await signInAdmin(admin, ctx.app.url, TEST_TOKEN);
      for (const theme of ['light', 'dark', 'aurora']) {
        await ctx.app.patchFlag(THEME, { defaultVariant: theme });
        await admin.waitForSelector(`html[data-theme="${theme}"]`);
        await admin.focus('#switch-button');
        // Keyboard focus, as a person tabbing gets it.
        await admin.keyboard.press('Shift+Tab');
        await admin.keyboard.press('Tab');
        const ring = await admin.evaluate(() => {
          const button = document.getElementById('switch-button')!;
          const style = getComputedStyle(button);
          const accent = getComputedStyle(document.documentElement).getPropertyValue('--accent').trim();
          const probe = document.createElement('span');
          probe.style.color = accent;
          document.body.append(probe);
          const accentRgb = getComputedStyle(probe).color;
          probe.remove();
          return {
            focused: document.activeElement === button,
            width: parseFloat(style.outlineWidth),
            style: style.outlineStyle,
            color: style.outlineColor,
            accentRgb,
          };
        });
        expect(ring.focused, theme).toBe(true);
        expect(ring.style, theme).toBe('solid');
        expect(ring.width, theme).toBeGreaterThanOrEqual(2);
        expect(ring.color, theme).toBe(ring.accentRgb);
      }
    } finally {
      await context.close();
    }
  });
});

describe('what floats over the page is opaque', { timeout: 90_000 }, () => {
  const ctx = appAndBrowserForThisBlock();

  it('the paused banner and the dialogs hide the text under them, in every theme', async () => {
    const context = await ctx.browser.newContext({ viewport: VIEWPORTS.laptop });
    try {
      const feed = await context.newPage();
      const admin = await context.newPage();
      await signInAdmin(admin, ctx.app.url, TEST_TOKEN);
      await ctx.app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
      await feed.goto(`${ctx.app.url}/?user=maya`);
      /** The alpha of an element's computed background colour (1 when opaque). */
      const alpha = (page: typeof feed, selector: string) =>
        page.$eval(selector, (node) => {
          const probe = document.createElement('canvas').getContext('2d')!;
          probe.fillStyle = getComputedStyle(node).backgroundColor;
          probe.fillRect(0, 0, 1, 1);
          return probe.getImageData(0, 0, 1, 1).data[3]! / 255;
        });
      for (const theme of ['light', 'dark', 'aurora']) {
        await ctx.app.patchFlag(THEME, { defaultVariant: theme });
        await feed.waitForSelector(`html[data-theme="${theme}"]`);
        await admin.waitForSelector(`html[data-theme="${theme}"]`);
        expect(await alpha(feed, '#paused-banner'), theme).toBe(1);
        expect(await alpha(feed, '#catching-up-banner'), theme).toBe(1);
        for (const dialog of ['#confirm-dialog', '#editor-dialog', '#ramp-dialog'])
          expect(await alpha(admin, dialog), `${theme} ${dialog}`).toBe(1);
      }
    } finally {
      await context.close();
      await ctx.app.patchFlag(THEME, { defaultVariant: 'light' });
      await ctx.app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
    }
  });
});
