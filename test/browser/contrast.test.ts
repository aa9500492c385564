import { describe, expect, it } from 'vitest';
import { KILL_SWITCH, THEME } from '../../server/flags/catalog.js';
import { TEST_TOKEN, type TestApp } from '../helpers/app.js';
import { appAndBrowserForThisBlock, signInAdmin } from '../helpers/browser.js';
import { lowContrastText } from '../helpers/contrast.js';

const VIEWPORTS = { phone: { width: 390, height: 844 }, laptop: { width: 1280, height: 800 } };
const RAMP = `/api/flags/${KILL_SWITCH}/ramp`;

/**
 * The states launch control must be read in: live, killed, partly killed, an outage (both
 * breakers open), a guarded restore in progress. Each sets itself up and names the switch's state.
 */
const STATES: { name: string; switchState: string; set: (app: TestApp) => Promise<void> }[] = [
  {
    name: 'live',
    switchState: 'live',
    set: async (app) => void (await app.patchFlag(KILL_SWITCH, { state: 'ENABLED' })),
  },
  {
    name: 'killed',
    switchState: 'killed',
    set: async (app) => void (await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' })),
  },
  {
    name: 'partly killed',
    switchState: 'partial',
    set: async (app) =>
      void (await app.patchFlag(KILL_SWITCH, {
        state: 'ENABLED',
        defaultVariant: 'off',
        targeting: { if: [{ in: ['beta', { var: 'groups' }] }, 'on', null] },
      })),
  },
  {
    name: 'outage',
    switchState: 'live',
    set: async (app) => {
      await app.patchFlag(KILL_SWITCH, { state: 'ENABLED', defaultVariant: 'on', targeting: null });
      app.simulator!.setKnobs({ mode: 'fail' });
      for (let n = 0; n < 8; n++) await app.request(`/?user=outage-${n}`);
    },
  },
  {
    name: 'restore in progress',
    switchState: 'partial',
    set: async (app) => {
      app.simulator!.setKnobs({ mode: 'normal' });
      await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
      await app.request(RAMP, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ stages: [25, 100], holdMs: 600_000 }),
      });
    },
  },
];

// See BROWSER_TIMEOUT_MS in scripts/test-under-load.mjs.
describe('every text readable: contrast computed from the colours the pages use', { timeout: 90_000 }, () => {
  const ctx = appAndBrowserForThisBlock();

  for (const theme of ['light', 'dark', 'aurora']) {
    it(`${theme}: both pages, live, killed, partly killed, outage and restoring, laptop and phone: text at 4.5:1 over what is under it`, async () => {
      await ctx.app.patchFlag(THEME, { defaultVariant: theme });
      const found: string[] = [];
      for (const [device, viewport] of Object.entries(VIEWPORTS)) {
        const context = await ctx.browser.newContext({ viewport, reducedMotion: 'reduce' });
        try {
          const feed = await context.newPage();
          const admin = await context.newPage();
          await signInAdmin(admin, ctx.app.url, TEST_TOKEN);
          for (const { name: state, switchState, set: setUp } of STATES) {
            await setUp(ctx.app);
            await feed.goto(`${ctx.app.url}/?user=maya`);
            await feed.waitForSelector('body[data-socket="connected"]');
            await admin.waitForSelector(`#switch-title[data-state="${switchState}"]`);
            if (state === 'outage') await admin.waitForSelector('#outage-alert:not([hidden])');
            if (state === 'restore in progress') await admin.waitForSelector('#ramp-panel[data-status="running"]');
            for (const page of [feed, admin])
              expect(
                await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
                `${device} ${state}: no sideways scroll`,
              ).toBe(true);
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
          // The next device starts from the switch killed and no ramp running.
          await ctx.app.patchFlag(KILL_SWITCH, { state: 'DISABLED', targeting: null, defaultVariant: 'on' });
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
