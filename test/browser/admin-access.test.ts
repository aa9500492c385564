/// <reference lib="dom" />
import { describe, expect, it } from 'vitest';
import { TOKEN_IN_TEXT } from '../../server/access/tokens.js';
import { KILL_SWITCH, THEME } from '../../server/flags/catalog.js';
import { TEST_TOKEN, type TestApp } from '../helpers/app.js';
import { appAndBrowserForThisBlock, signInAdmin } from '../helpers/browser.js';
import { runToEnd } from '../../testing/process.js';

/** `npm run token -- ...` on this app's folder; the token it printed once, for `create`. */
async function token(app: TestApp, ...args: string[]): Promise<string> {
  const result = await runToEnd('server/access/cli.ts', args, { FLAGS_FILE: app.flagsFile, LOG_LEVEL: 'silent' });
  expect(result.code, result.stderr).toBe(0);
  return TOKEN_IN_TEXT.exec(result.stdout)?.[0] ?? '';
}

// See BROWSER_TIMEOUT_MS in scripts/test-under-load.mjs.
describe('signing in to launch control in a real browser', { timeout: 90_000 }, () => {
  const ctx = appAndBrowserForThisBlock();

  it('checks the token when it is entered, says clearly when it is read-only, and signing out ends the session', async () => {
    const page = await ctx.browser.newPage();
    await page.goto(`${ctx.app.url}/admin`);
    await page.fill('#sign-in-form input[name=token]', 'ks_not-the-token');
    await page.click('#sign-in-form button[type=submit]');
    await page.waitForSelector('#sign-in-message:has-text("not accepted")');
    expect(await page.$('#switch-button')).toBeNull();

    const reader = await token(ctx.app, 'create', 'night-watch', '--read-only');
    await signInAdmin(page, ctx.app.url, reader);
    expect(await page.textContent('#principal-name')).toBe('night-watch');
    expect(await page.textContent('#principal-scope')).toMatch(
      /^Read-only: you can watch everything here, and change nothing\.$/,
    );
    expect(await page.isDisabled('#switch-button')).toBe(true);
    const targetButtons = await page.$$eval('[data-edit]', (buttons) =>
      buttons.map((b) => (b as HTMLButtonElement).disabled),
    );
    expect(targetButtons.length).toBeGreaterThan(0);
    expect(targetButtons.every(Boolean)).toBe(true);
    // It watches: the live channel is open, with the flags and the figures.
    await page.waitForSelector('#flags-body tr');

    await page.click('#sign-out');
    await page.waitForSelector('#sign-in-form');
    expect((await page.context().cookies()).some((cookie) => cookie.name === 'ks_admin')).toBe(false);
    await page.close();
  });

  it('a revoked token: the open page is told why, at once', async () => {
    const page = await ctx.browser.newPage();
    await signInAdmin(page, ctx.app.url, await token(ctx.app, 'create', 'temp-operator'));
    expect(await page.isDisabled('#switch-button')).toBe(false);
    await token(ctx.app, 'revoke', 'temp-operator');
    await page.waitForSelector('#switch-message:has-text("was revoked")', { timeout: 5000 });
    expect(await page.isDisabled('#switch-button')).toBe(true);
    await page.close();
  });

  it('the admin token signs in with full access; the page says what is true: live, partly killed and for whom, killed', async () => {
    const page = await ctx.browser.newPage();
    await signInAdmin(page, ctx.app.url, TEST_TOKEN);
    expect(await page.textContent('#principal-scope')).toMatch(/^Full access/);
    expect(await page.textContent('#switch-title')).toBe('Live: third party on');

    await ctx.app.patchFlag(KILL_SWITCH, {
      targeting: {
        if: [
          { in: ['beta', { var: 'groups' }] },
          'off',
          {
            fractional: [
              ['on', 60],
              ['off', 40],
            ],
          },
        ],
      },
    });
    await page.waitForSelector('#switch-title[data-state="partial"]');
    expect(await page.textContent('#switch-title')).toBe('Partly killed');
    expect(await page.textContent('#switch-detail')).toMatch(
      /^Killed for group beta; killed for 40 % of everyone else\. \(version \d+\)$/,
    );
    expect(await page.textContent('#switch-button')).toBe('Kill for everyone');

    await ctx.app.patchFlag(KILL_SWITCH, { targeting: null, state: 'DISABLED' });
    await page.waitForSelector('#switch-title[data-state="killed"]');
    expect(await page.textContent('#switch-button')).toBe('Restore third-party content');
    await ctx.app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
    await page.close();
  });

  it('the targeting editor previews the flag as saving leaves it, and says when nothing changed', async () => {
    const page = await ctx.browser.newPage();
    await signInAdmin(page, ctx.app.url, TEST_TOKEN);
    await page.click(`[data-edit="${THEME}"]`);
    expect(await page.textContent('#editor-message')).toBe('Nothing to save: this is the flag as it is now.');
    expect(await page.isDisabled('#editor-save')).toBe(true);
    expect(JSON.parse((await page.textContent('#editor-preview'))!)).toEqual(
      (await ctx.app.request(`/api/flags/${THEME}`)).body.definition,
    );

    await page.click('#add-group');
    await page.fill('#editor-groups .rule:last-child input', 'staff');
    await page.selectOption('#editor-groups .rule:last-child select', 'dark');
    const after = JSON.parse((await page.textContent('#editor-preview'))!);
    expect(after.targeting).toEqual({ if: [{ in: ['staff', { var: 'groups' }] }, 'dark', null] });
    expect(after.variants).toEqual({ light: 'light', dark: 'dark', aurora: 'aurora' });
    expect(await page.isDisabled('#editor-save')).toBe(false);
    await page.click('#editor-save');
    await page.waitForSelector('#flags-message:has-text("theme: Done")');
    expect((await ctx.app.request(`/api/flags/${THEME}`)).body.definition.targeting).toEqual(after.targeting);
    await ctx.app.patchFlag(THEME, { targeting: null });
    await page.close();
  });
});
