/// <reference lib="dom" />
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { sleep, startTestApp, type TestApp } from '../helpers/app.js';
import { launchChromium } from '../helpers/browser.js';

describe('the launch dashboard in a real browser', () => {
  let app: TestApp;
  let browser: Browser;
  beforeAll(async () => {
    [app, browser] = await Promise.all([startTestApp({ RECOMMENDATIONS_CACHE_TTL_MS: '0' }), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await app?.stop();
  });

  it('charts third-party calls live, marks the flip, and shows the call rate fall to zero after a kill', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(String(error)));
    await page.goto(`${app.url}/admin`);
    await page.waitForSelector('body[data-socket="connected"]');

    // Traffic: a page view every 50 ms, each one calling the third party while live.
    let running = true;
    const traffic = (async () => {
      for (let i = 0; running; i++) {
        await fetch(`${app.url}/?user=dash-${i % 50}`).then((r) => r.text());
        await sleep(50);
      }
    })();
    const callsPerSecond = async () => Number(await page.textContent('#calls-per-second'));
    await page.waitForFunction(() => Number(document.getElementById('calls-per-second')?.textContent) > 0, undefined, { timeout: 8000 });
    expect(await callsPerSecond()).toBeGreaterThan(0);
    expect(Number(await page.textContent('#views-per-second'))).toBeGreaterThan(0);

    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    // The next full second without a call: the rate shows 0, and the kill is marked on the charts.
    await page.waitForFunction(() => document.getElementById('calls-per-second')?.textContent === '0', undefined, { timeout: 5000 });
    await sleep(1100);
    expect(await callsPerSecond()).toBe(0);
    expect(Number(await page.textContent('#views-per-second'))).toBeGreaterThan(0); // pages still served
    await page.waitForSelector('#chart-calls[data-flips-drawn="1"]', { timeout: 3000 });
    running = false;
    await traffic;
    expect(errors).toEqual([]);
    await page.close();
  });
});
