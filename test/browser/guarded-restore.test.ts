/// <reference lib="dom" />
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { createToken } from '../helpers/access.js';
import { waitFor } from '../helpers/app.js';
import { adminPagesForThisBlock, appAndBrowserForThisBlock, seriousViolations } from '../helpers/browser.js';

const RAMP = `/api/flags/${KILL_SWITCH}/ramp`;

// See BROWSER_TIMEOUT_MS in scripts/test-under-load.mjs.
describe('a guarded restore from launch control', { timeout: 90_000 }, () => {
  const ctx = appAndBrowserForThisBlock({ RECOMMENDATIONS_CACHE_TTL_MS: '0', UPSTREAM_TIMEOUT_MS: '1000' });
  const admin = adminPagesForThisBlock(ctx, { bypassCSP: true });
  // Percentages keep their sign on the line with a no-break space: read as a plain one.
  const text = async (page: Page, selector: string) =>
    (await page.locator(selector).innerText()).replaceAll('\u00a0', ' ');

  it('offers "Restore gradually" beside the restore, says what it will do, then shows each stage to its end', async () => {
    await ctx.app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    const page = await admin();
    await page.waitForSelector('#ramp-button:not([hidden])');
    await page.click('#ramp-button');
    await page.waitForSelector('#ramp-dialog[open]');
    expect(await text(page, '#ramp-plan')).toBe(
      'Live for 10 % of viewers first, then 25, 50 and 100 %, each stage held 30 s. If more than 5 % of third-party calls fail (judged over at least 20 calls) or a circuit breaker opens, everyone is killed again at once. A kill from here stops it at any time.',
    );
    await page.fill('#ramp-form input[name=stages]', '50, 100');
    // Held long enough for a slow machine's page to be read while at stage 1 (at 2 s it was once past it).
    await page.fill('#ramp-form input[name=hold]', '6');
    await page.fill('#ramp-form input[name=minCalls]', '0');
    expect(await text(page, '#ramp-plan')).toMatch(
      /^Live for 50 % of viewers first, then 100 %, each stage held 6 s\./,
    );
    await page.click('#ramp-confirm');
    await page.waitForSelector('#ramp-panel[data-status="running"]');
    await waitFor(async () => /stage 1 of 2, live for 50 %/.test(await text(page, '#ramp-title')), 10_000, 'stage 1');
    expect(await page.locator('#ramp-stages li').allInnerTexts()).toEqual(['50\u00a0%', '100\u00a0%']);
    expect(await page.getAttribute('#ramp-stages li[aria-current=step]', 'data-stage')).toBe('current');
    expect(await text(page, '#ramp-next')).toMatch(/Next stage \(100 %\) in \d s|The hold is over/);
    expect(await page.isHidden('#ramp-button')).toBe(true);
    // The top of the page says it too.
    expect(await text(page, '#health-ramp')).toMatch(
      /^Guarded restore: stage \d of 2, live for \d+ % of viewers\. Guard: /,
    );
    expect(await seriousViolations(page)).toEqual([]);
    await page.waitForSelector('#ramp-panel[data-status="completed"]', { timeout: 30_000 });
    expect(await text(page, '#ramp-title')).toBe('Guarded restore completed: live for everyone');
    expect(await page.getAttribute('#switch-title', 'data-state')).toBe('live');
    const audit = (await ctx.app.request('/api/audit?limit=1')).body.entries[0];
    expect(audit.actor).toMatchObject({ source: 'admin', name: 'admin' });
  });

  it('after a rollback, says why in words', async () => {
    await ctx.app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    const page = await admin();
    const started = await ctx.app.request(RAMP, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ stages: [50, 100], holdMs: 30_000, minCalls: 3, maxErrorRate: 0.2 }),
    });
    expect(started.status).toBe(202);
    await page.waitForSelector('#ramp-panel[data-status="running"]');
    ctx.app.simulator!.setKnobs({ mode: 'fail' });
    for (let n = 0; n < 30; n++) await ctx.app.request(`/?user=reader-${n}`);
    await page.waitForSelector('#ramp-panel[data-status="rolled-back"]', { timeout: 15_000 });
    expect(await text(page, '#ramp-title')).toBe('Rolled back at stage 1 of 2: everyone killed again');
    expect(await text(page, '#ramp-verdict')).toMatch(
      /^Why: (avatars|recommendations): .* while live for 50 % of viewers\. Started \d+s ago by admin\.$/,
    );
    expect(await page.getAttribute('#switch-title', 'data-state')).toBe('killed');
    expect(await seriousViolations(page)).toEqual([]);
  });

  it('a read-only token sees the ramp and cannot start one', async () => {
    await ctx.app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    const watcher = await createToken(ctx.app, 'ramp-watcher', '--read-only');
    const page = await admin(watcher);
    await page.waitForSelector('#ramp-button:not([hidden])');
    expect(await page.isDisabled('#ramp-button')).toBe(true);
    await ctx.app.request(RAMP, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ stages: [10, 100], holdMs: 60_000, minCalls: 0 }),
    });
    await waitFor(async () => /live for 10 %/.test(await text(page, '#ramp-title')), 10_000, 'the ramp on the page');
    await ctx.app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    await page.waitForSelector('#ramp-panel[data-status="stopped"]');
    expect(await text(page, '#ramp-verdict')).toMatch(/^Why: admin killed the switch during the restore\./);
  });
});
