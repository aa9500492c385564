/// <reference lib="dom" />
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { startTestApp, TEST_TOKEN, type TestApp } from './app.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * How long a test waits for a push to show on a page. It arrives in milliseconds (bench/fanout.ts
 * measures how many); the bound only keeps a lost push from waiting out the whole test, with room
 * for a slow machine running the whole suite beside eight Chromium tabs.
 */
export const PUSH_SHOWS_WITHIN_MS = 15_000;

/**
 * Debian's Chromium, headless, with the flags this machine needs (no sandbox as root, no
 * background networking on a closed network). Never a downloaded browser: a missing Chromium
 * is an error that says how to install it, never a skipped test.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: run "apt-get install -y chromium" (or set CHROMIUM_PATH).`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/** Opens /admin in `page` and signs in with `token` through the page's own form, as a person does. */
/**
 * Whether a tab shows everything live: live recommendations, and every avatar from the third party,
 * loaded (a source set but still loading is a request the third party has yet to see: it would
 * arrive after the next test has started counting).
 */
export const wholeAndLive = (page: Page, origin: string) =>
  page.evaluate(
    (origin) =>
      document.querySelector('#recommendations')?.getAttribute('data-source') === 'live' &&
      [...document.querySelectorAll<HTMLImageElement>('img.avatar')].every(
        (img) => img.src.startsWith(origin) && img.complete && img.naturalWidth > 0,
      ),
    origin,
  );

export async function signInAdmin(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/admin`);
  await page.fill('#sign-in-form input[name=token]', token);
  await page.click('#sign-in-form button[type=submit]');
  // The form posts, and the server answers with the launch-control page (a 303 back to /admin).
  await page.waitForSelector('#principal-name');
  await page.waitForSelector('body[data-socket="connected"]');
}

/**
 * A real app and Debian's Chromium for the tests of one describe block: both started before its
 * first test, both stopped after its last. Read `app` and `browser` inside the tests.
 */
export function appAndBrowserForThisBlock(env: Record<string, string> = {}): {
  readonly app: TestApp;
  readonly browser: Browser;
} {
  let app: TestApp | undefined;
  let browser: Browser | undefined;
  beforeAll(async () => {
    [app, browser] = await Promise.all([startTestApp(env), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await app?.stop();
  });
  return {
    get app() {
      return app!;
    },
    get browser() {
      return browser!;
    },
  };
}

/**
 * Signed-in admin pages for the tests of one block, each in a browser context of its own (a laptop
 * screen), closed after each test, and the built-in third party set back to normal.
 */
export function adminPagesForThisBlock(
  ctx: ReturnType<typeof appAndBrowserForThisBlock>,
  options: BrowserContextOptions = {},
): (token?: string) => Promise<Page> {
  const contexts: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const context of contexts.splice(0)) await context.close();
    ctx.app.simulator!.setKnobs({ mode: 'normal' });
  });
  return async (token = TEST_TOKEN) => {
    const context = await ctx.browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
    contexts.push(context);
    const page = await context.newPage();
    await signInAdmin(page, ctx.app.url, token);
    return page;
  };
}

const axeSource = readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** axe-core's critical and serious violations on the page as it is now (WCAG 2.1 A and AA). */
export async function seriousViolations(page: Page): Promise<string[]> {
  await page.addScriptTag({ content: await axeSource });
  const violations = await page.evaluate(async () => {
    const result = await (window as any).axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    });
    return result.violations.map((v: any) => ({
      id: v.id,
      impact: v.impact,
      nodes: v.nodes.map((n: any) => n.target.join(' ')).slice(0, 3),
    }));
  });
  return violations
    .filter((v: any) => v.impact === 'critical' || v.impact === 'serious')
    .map((v: any) => `${v.id}: ${v.nodes.join(', ')}`);
}
