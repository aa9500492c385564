/// <reference lib="dom" />
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../server/simulator/simulator.js';
import { launchChromium } from '../helpers/browser.js';

/**
 * Another site's page (served from `localhost`, a different site from the simulator's
 * 127.0.0.1) that tries to make the third party hang for every app that uses it: a text/plain
 * form whose body is valid JSON, and a no-cors fetch. Neither needs the page to read an answer.
 */
function attackerPage(knobs: string) {
  return `<!doctype html><title>Cute cats</title>
<form id="form" method="POST" action="${knobs}" enctype="text/plain">
  <input name='{"mode":"hang","x":"' value='"}'>
</form>`;
}

// See BROWSER_TIMEOUT_MS in scripts/test-under-load.mjs.
describe('the simulator knobs against another site in a real browser', { timeout: 90_000 }, () => {
  let sim: Simulator;
  let site: Server;
  let browser: Browser;
  beforeAll(async () => {
    [sim, browser] = await Promise.all([startSimulator({ port: 0, knobs: { latencyMs: 5 } }), launchChromium()]);
    site = createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'text/html' }).end(attackerPage(`${sim.origin}/_sim/knobs`)),
    );
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => site?.close(resolve));
    await sim?.close();
  });

  it('a cross-site form post and a no-cors fetch reach the simulator and change nothing', async () => {
    const page = await browser.newPage();
    await page.goto(`http://localhost:${(site.address() as AddressInfo).port}/`);
    const knobs = `${sim.origin}/_sim/knobs`;
    const answers: number[] = [];
    page.on('response', (response) => {
      if (response.url() === knobs && response.request().method() === 'POST') answers.push(response.status());
    });

    // The no-cors fetch resolves (with an opaque answer) once the simulator has answered it.
    await page.evaluate(
      (url) => fetch(url, { method: 'POST', mode: 'no-cors', body: '{"mode":"hang"}' }).then(() => undefined),
      knobs,
    );
    await Promise.all([
      page.waitForResponse((response) => response.url() === knobs && response.request().method() === 'POST'),
      page.evaluate(() => (document.getElementById('form') as HTMLFormElement).submit()),
    ]);
    // Both reached the simulator, and it refused both (another site's Origin; text/plain).
    expect(answers).toEqual([403, 403]);
    expect(sim.knobs().mode).toBe('normal');
    // And the third party still answers: nobody made it hang.
    expect((await fetch(`${sim.avatarApiUrl}/maya`)).status).toBe(200);
    await page.close();
  });
});
