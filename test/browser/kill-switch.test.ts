/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KILL_SWITCH, THEME } from '../../server/flags/catalog.js';
import { startTestApp, TEST_TOKEN, waitFor, type TestApp } from '../helpers/app.js';
import { appAndBrowserForThisBlock, PUSH_SHOWS_WITHIN_MS, signInAdmin } from '../helpers/browser.js';

const contexts: BrowserContext[] = [];
async function newContext(browser: Browser) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  contexts.push(context);
  return context;
}

/** Opens the feed and records, inside the page, when #feed's data-show-avatars changes. */
async function openFeed(browser: Browser, app: TestApp, user: string): Promise<Page> {
  const context = await newContext(browser);
  const page = await context.newPage();
  await page.goto(`${app.url}/?user=${user}`);
  await page.waitForSelector('body[data-socket="connected"]');
  await page.evaluate(() => {
    (window as any).sameDocument = true;
    (window as any).changes = [];
    new MutationObserver(() => {
      const feed = document.getElementById('feed');
      (window as any).changes.push({ at: Date.now(), value: feed?.dataset.showAvatars });
    }).observe(document.getElementById('live')!, {
      attributes: true,
      subtree: true,
      childList: true,
      attributeFilter: ['data-show-avatars'],
    });
  });
  return page;
}

const avatarSources = (page: Page) =>
  page.$$eval('img.avatar', (imgs) => imgs.map((img) => (img as HTMLImageElement).src));

// A real browser is slow under load (25 page actions took 28 s with two busy loops beside the
// suite): a timeout three times that. See BROWSER_TIMEOUT_MS in scripts/test-under-load.mjs.
describe('the kill switch in a real browser', { timeout: 90_000 }, () => {
  const ctx = appAndBrowserForThisBlock({ RECOMMENDATIONS_CACHE_TTL_MS: '0' });
  beforeEach(async () => {
    await ctx.app.patchFlag(KILL_SWITCH, { state: 'ENABLED', targeting: null });
  });
  afterEach(async () => {
    for (const context of contexts.splice(0)) await context.close();
  });

  /** The post at the top of the viewport, and its offset there. */
  const postInView = (page: Page) =>
    page.evaluate(() => {
      const post = [...document.querySelectorAll('.post')].find((p) => p.getBoundingClientRect().bottom > 0)!;
      return { id: post.id, top: Math.round(post.getBoundingClientRect().top) };
    });

  it('kills in place (no reload, scroll kept, zero third-party calls) and restores live content', async () => {
    const page = await openFeed(ctx.browser, ctx.app, 'maya');
    const navigations: string[] = [];
    page.on('framenavigated', (frame) => navigations.push(frame.url()));
    expect(await page.getAttribute('#feed', 'data-show-avatars')).toBe('true');
    expect(await page.getAttribute('#recommendations', 'data-source')).toBe('live');
    expect((await avatarSources(page)).every((src) => src.startsWith(ctx.app.simulator!.origin))).toBe(true);
    await page.evaluate(() => window.scrollTo(0, 400));
    const inView = await postInView(page);

    ctx.app.simulator!.resetStats();
    const flippedAt = Date.now();
    expect((await ctx.app.patchFlag(KILL_SWITCH, { state: 'DISABLED' })).status).toBe(200);
    await page.waitForSelector('#feed[data-show-avatars="false"]', { timeout: PUSH_SHOWS_WITHIN_MS });
    await page.waitForSelector('#recommendations[data-source="fallback"]', { timeout: PUSH_SHOWS_WITHIN_MS });
    const killedAt = await page.evaluate(
      () => (window as any).changes.find((c: any) => c.value === 'false')?.at as number,
    );
    console.log(`kill to page: ${killedAt - flippedAt} ms`);

    expect(await page.isVisible('#paused-banner')).toBe(true);
    expect(new Set((await avatarSources(page)).map((src) => new URL(src).pathname))).toEqual(
      new Set(['/static/img/fallback-avatar.svg']),
    );
    expect(await page.evaluate(() => (window as any).sameDocument)).toBe(true);
    expect(navigations).toEqual([]);
    expect(await postInView(page)).toEqual(inView); // the reader stays on the same post
    await page.reload(); // a killed page, loaded afresh, calls nothing either
    await page.waitForSelector('body[data-socket="connected"]');
    await page.waitForLoadState('networkidle'); // everything the page asks for on load has been asked
    expect(ctx.app.simulator!.stats().total).toBe(0);

    await page.evaluate(() => ((window as any).sameDocument = true));
    navigations.length = 0;
    await ctx.app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
    await page.waitForSelector('#feed[data-show-avatars="true"]', { timeout: PUSH_SHOWS_WITHIN_MS });
    await page.waitForSelector('#recommendations[data-source="live"]');
    expect(await page.isHidden('#paused-banner')).toBe(true);
    expect((await avatarSources(page)).every((src) => src.startsWith(ctx.app.simulator!.origin))).toBe(true);
    await page.waitForFunction(() =>
      [...document.querySelectorAll('img.avatar')].every((img) => (img as HTMLImageElement).complete),
    );
    expect(ctx.app.simulator!.stats().requests.recommendations).toBeGreaterThan(0);
    expect(ctx.app.simulator!.stats().requests.images).toBeGreaterThan(0);
    expect(await page.evaluate(() => (window as any).sameDocument)).toBe(true);
    expect(navigations).toEqual([]);
  });

  it('updates only the viewers whose own value changed', async () => {
    const [beta, other] = await Promise.all([
      openFeed(ctx.browser, ctx.app, 'theo'),
      openFeed(ctx.browser, ctx.app, 'jonas'),
    ]);
    await ctx.app.patchFlag(KILL_SWITCH, { targeting: { if: [{ in: ['beta', { var: 'groups' }] }, 'off', null] } });
    await beta.waitForSelector('#feed[data-show-avatars="false"]', { timeout: PUSH_SHOWS_WITHIN_MS });
    // A fence: a theme change for everyone, pushed after the kill on the same connection (pushes
    // go out one change after another, in order). Once Jonas's page has it, it has all before it.
    await ctx.app.patchFlag(THEME, { defaultVariant: 'dark' });
    await other.waitForSelector('html[data-theme="dark"]', { timeout: PUSH_SHOWS_WITHIN_MS });
    expect(await other.getAttribute('#feed', 'data-show-avatars')).toBe('true');
    expect(await other.evaluate(() => (window as any).changes.length)).toBe(0);
    await ctx.app.patchFlag(THEME, { defaultVariant: 'light' });
    await ctx.app.patchFlag(KILL_SWITCH, { targeting: null });
    await beta.waitForSelector('#feed[data-show-avatars="true"]', { timeout: PUSH_SHOWS_WITHIN_MS });
  });

  it('flips from the launch-control page (signed in, confirm) and every feed follows; the audit names who', async () => {
    const feed = await openFeed(ctx.browser, ctx.app, 'priya');
    const admin = await (await newContext(ctx.browser)).newPage();
    await signInAdmin(admin, ctx.app.url, TEST_TOKEN);
    // The credential lives in an HttpOnly cookie: nothing a script can read holds it.
    expect(await admin.evaluate(() => document.cookie)).not.toContain('ks_admin');
    expect(await admin.evaluate(() => JSON.stringify(localStorage))).not.toContain(TEST_TOKEN);
    // The earlier tests' tabs are closed; their sockets' disconnects may still be on their way.
    await waitFor(() => ctx.app.realtime.pusher.browserCount === 1, 10_000, "this test's feed alone");
    await admin.waitForFunction(() => document.getElementById('browsers')?.textContent === '1');
    await admin.fill('input[name=actor]', 'Launch captain');
    await admin.press('input[name=actor]', 'Tab');
    expect(await admin.textContent('#switch-title')).toBe('Live: third party on');

    await admin.click('#switch-button');
    await admin.click('#confirm-button');
    await feed.waitForSelector('#feed[data-show-avatars="false"]', { timeout: PUSH_SHOWS_WITHIN_MS });
    await admin.waitForFunction(() => document.getElementById('switch-title')?.dataset.state === 'killed');
    await admin.waitForFunction(() => document.getElementById('audit-list')?.textContent?.includes('Launch captain'));
    expect(await admin.textContent('#switch-last')).toMatch(
      /killed \(disabled\), by admin \(Launch captain\) from the admin page/,
    );

    // Cancelling the confirm changes nothing: the page's own close handler (which would send the
    // PATCH at once) has run when ours, added after it, runs; and it sent nothing.
    await admin.evaluate(() => {
      const w = window as any;
      w.patches = 0;
      const send = window.fetch.bind(window);
      window.fetch = (input, init) => {
        if (init?.method === 'PATCH') w.patches++;
        return send(input, init);
      };
      w.dialogClosed = new Promise((resolve) =>
        document.getElementById('confirm-dialog')!.addEventListener('close', () => resolve(true), { once: true }),
      );
    });
    await admin.click('#switch-button');
    await admin.click('dialog button[value=cancel]');
    expect(await admin.evaluate(() => (window as any).dialogClosed)).toBe(true);
    expect(await admin.evaluate(() => (window as any).patches)).toBe(0);
    expect(await feed.getAttribute('#feed', 'data-show-avatars')).toBe('false');

    await admin.click('#switch-button');
    await admin.click('#confirm-button');
    await feed.waitForSelector('#feed[data-show-avatars="true"]', { timeout: PUSH_SHOWS_WITHIN_MS });
  });

  it('kills with a note beyond Latin-1 ("Łukasz — on call"), and the audit keeps the note exactly', async () => {
    const admin = await (await newContext(ctx.browser)).newPage();
    await signInAdmin(admin, ctx.app.url, TEST_TOKEN);
    await admin.fill('input[name=actor]', 'Łukasz — on call');
    await admin.press('input[name=actor]', 'Tab');
    await admin.waitForSelector('#access-message:has-text("Your changes will carry this note.")');

    await admin.click('#switch-button');
    await admin.click('#confirm-button');
    // The answer to the PATCH, then the page's state (pushed over the socket, maybe before it).
    await admin.waitForSelector('#switch-message:has-text("Done in")', { timeout: 10_000 });
    expect(await admin.getAttribute('#switch-message', 'class')).not.toContain('error');
    await admin.waitForFunction(() => document.getElementById('switch-title')?.dataset.state === 'killed');
    const { body } = await ctx.app.request('/api/audit?limit=1');
    expect(body.entries[0]).toMatchObject({
      key: KILL_SWITCH,
      summary: 'killed (disabled)',
      actor: { source: 'admin', name: 'admin', note: 'Łukasz — on call' },
    });
    await admin.waitForFunction(() =>
      document.getElementById('switch-last')?.textContent?.includes('by admin (Łukasz — on call) from the admin page'),
    );
  });

  it('says so on the page when a write cannot be sent (the server stopped): the kill button and the targeting editor', async () => {
    // An app of its own, stopped half-way; the block's app stays up for the other tests.
    const app = await startTestApp();
    try {
      const admin = await (await newContext(ctx.browser)).newPage();
      await signInAdmin(admin, app.url, TEST_TOKEN);
      await app.stop();
      await admin.click('#switch-button');
      await admin.click('#confirm-button');
      await admin.waitForSelector('#switch-message.error:has-text("could not be sent")', { timeout: 10_000 });
      expect(await admin.textContent('#switch-title')).toBe('Live: third party on');

      await admin.click(`[data-edit="${THEME}"]`);
      await admin.click('#add-group');
      await admin.fill('#editor-groups .rule:last-child input', 'staff');
      await admin.selectOption('#editor-groups .rule:last-child select', 'dark');
      await admin.click('#editor-save');
      await admin.waitForSelector('#editor-message:has-text("could not be sent")', { timeout: 10_000 });
      expect(await admin.isVisible('#editor-dialog')).toBe(true); // the rules stay, to save again
    } finally {
      await app.stop();
    }
  });

  it('shows the connection on the page and converges after being offline during a flip', async () => {
    const page = await openFeed(ctx.browser, ctx.app, 'lena');
    expect(await page.textContent('.connection-label')).toBe('Connected');
    await page.context().setOffline(true);
    // Offline in Chromium does not cut an open WebSocket: close it from inside, as a network drop would.
    await page.evaluate(() => {
      const managers = (window as any).io.managers as Record<string, { engine?: { close(): void } }> | undefined;
      for (const manager of Object.values(managers ?? {})) manager.engine?.close();
    });
    await page.waitForSelector('body[data-socket="disconnected"]', { timeout: 10_000 });
    await ctx.app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    await page.context().setOffline(false);
    await page.waitForSelector('body[data-socket="connected"]', { timeout: 10_000 });
    await page.waitForSelector('#feed[data-show-avatars="false"]', { timeout: PUSH_SHOWS_WITHIN_MS });
  });
});
