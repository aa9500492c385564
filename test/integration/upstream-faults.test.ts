import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import type { SimulatorMode } from '../../server/simulator/simulator.js';
import { counterValue, record, startTestApp, waitFor, type TestApp } from '../helpers/app.js';
import { createLightPage, turnOfPage } from '../../testing/light-page.js';
import { openLightPage } from '../helpers/light-page.js';

const TIMEOUT = 300;

describe('the page always answers, whatever the third party does', () => {
  // A fresh app for each fault: one fault's open breaker must not hide the next one's calls.
  // The third party answers (or fails) within about 10 ms, far inside the timeout even on a busy
  // machine, so each call ends as its fault says: an error is never a late answer.
  const FAULT_TIMEOUT = 1000;
  let app: TestApp;
  beforeEach(async () => {
    app = await startTestApp({ UPSTREAM_TIMEOUT_MS: String(FAULT_TIMEOUT), SIMULATOR_LATENCY_MS: '10' });
  });
  afterEach(() => app.stop());

  it.each<[SimulatorMode, string]>([
    ['hang', 'timeout'],
    ['fail', 'error'],
    ['garbage', 'invalid'],
    ['slow', 'timeout'],
  ])('third party in mode %s: 200 with the fallbacks within the timeout, counted as %s', async (mode, outcome) => {
    app.simulator!.setKnobs({ mode });
    const started = performance.now();
    const { status, text } = await app.request(`/?user=fault-${mode}`);
    const elapsed = performance.now() - started;
    expect(status).toBe(200);
    expect(text).toContain('data-source="fallback"');
    expect(text).toContain('data-show-avatars="true"');
    expect(text).toContain('/static/img/fallback-avatar.svg');
    expect(elapsed).toBeLessThan(FAULT_TIMEOUT + 1200); // about one timeout, never the fault's own duration
    // Every call was made and ends counted by what became of it (a hung call at its own timeout).
    const counted = async () =>
      counterValue(await (await fetch(`${app.url}/metrics`)).text(), 'upstream_requests_total', { outcome });
    await waitFor(async () => (await counted()) >= 8, FAULT_TIMEOUT * 3, `calls counted as ${outcome}`);
    expect(await counted()).toBe(
      app.simulator!.stats().requests.avatars + app.simulator!.stats().requests.recommendations,
    );
  });
});

describe('the circuit breaker, and AUTO_KILL', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ UPSTREAM_TIMEOUT_MS: String(TIMEOUT), AUTO_KILL: 'true' });
  });
  afterAll(() => app.stop());

  it('opens after repeated failures, stops calling, shows it in /metrics and /admin, and kills the switch automatically', async () => {
    const admin = await app.socket({ auth: { role: 'admin' } });
    const viewer = await app.socket({ cookie: 'viewer=maya' });
    const updates = record(viewer, 'flag_update');
    const states = record(admin, 'admin_state');
    app.simulator!.setKnobs({ mode: 'fail' });
    for (let i = 0; i < 6; i++) await app.request(`/?user=breaker-${i}`);

    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    // The avatars breaker opens first (nine calls a page); the kill then stops every other call.
    expect(metrics).toMatch(/upstream_breaker_state\{service="\w+"\} 2/);
    await waitFor(() => updates.some((u) => u.key === KILL_SWITCH && u.value === false), 3000, 'the automatic kill');
    const audit = (await app.request('/api/audit?limit=5')).body.entries;
    expect(audit[0]).toMatchObject({
      key: KILL_SWITCH,
      summary: 'killed (disabled)',
      actor: { source: 'auto', name: expect.stringMatching(/auto-kill: circuit breaker for \w+ opened/) },
    });
    await waitFor(() => states.some((s) => s.upstream.some((u: any) => u.breaker === 'open')), 3000, 'the admin state');

    // Killed: nothing is called; restoring is a human decision, and the breaker recovering does not restore.
    app.simulator!.setKnobs({ mode: 'normal' });
    app.simulator!.resetStats();
    await app.request('/?user=after-kill');
    expect(app.simulator!.stats().total).toBe(0);
    expect((await app.request(`/api/flags/${KILL_SWITCH}`)).body.definition.state).toBe('DISABLED');
    app.closeSockets();
  });
});

describe('a stall of our own', () => {
  // Four times the third party's slowest answer (150 ms ± 50 %): on a loaded machine a call must
  // not time out on its own while the page catches up, or the page rightly stays short (a third
  // party's timeout is not caught up). At 300 ms it did, once in five CI runs.
  const STALL_TIMEOUT = 1000;
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({
      UPSTREAM_TIMEOUT_MS: String(STALL_TIMEOUT),
      SIMULATOR_LATENCY_MS: '150',
      AUTO_KILL: 'true',
    });
  });
  afterAll(() => app.stop());

  it('does not open the breaker (nor kill the switch): the calls it made late are caught up on a turn', async () => {
    // A page load whose third-party calls are in flight when this process's event loop stalls for
    // two timeouts (a burst of renders, a long GC): the answers arrive, but nobody reads them in time.
    const page = app.request('/?user=stalled');
    await waitFor(() => app.simulator!.stats().inFlight >= 5, 3000, 'calls in flight');
    const until = performance.now() + STALL_TIMEOUT * 2;
    while (performance.now() < until) {
      // Busy: the loop does nothing else.
    }
    const { status, text } = await page;
    expect(status).toBe(200);

    // The calls timed out: without the stall rule these timeouts (nine avatars) open the breaker
    // and AUTO_KILL kills the switch for a burst of ours.
    const timeouts = counterValue(await (await fetch(`${app.url}/metrics`)).text(), 'upstream_requests_total', {
      outcome: 'timeout',
    });
    expect(timeouts).toBeGreaterThanOrEqual(5);
    expect(app.upstream.map((client) => client.breakerState())).toEqual(['closed', 'closed']);
    expect((await app.request(`/api/flags/${KILL_SWITCH}`)).body.definition.state).toBe('ENABLED');

    // The page came out short and says it is catching up. It comes back on its turns as the page
    // does (live-sync's own policy): a turn that comes before the stalled calls are done joins them
    // and is short again, with another turn. It ends whole and live.
    const turn = turnOfPage(text);
    expect(turn).toBeDefined();
    const reader = createLightPage(app.url, 'stalled');
    reader.comeBackOn(turn!);
    await reader.settled();
    expect(reader.content()).toBe('live');
    expect(reader.requests.failures).toBe(0);
  });
});

describe("a kill while a page's calls wait for a slot", () => {
  const CAP = 2;
  let app: TestApp;
  beforeAll(async () => {
    // A third party slow enough that the kill surely lands while the first calls are in flight.
    app = await startTestApp({
      UPSTREAM_MAX_CONCURRENCY: String(CAP),
      UPSTREAM_TIMEOUT_MS: '6000',
      SIMULATOR_LATENCY_MS: '1500',
    });
  });
  afterAll(() => app.stop());

  it('the calls still queued are never made: the third party sees only those already in flight', async () => {
    const page = app.request('/?user=queued-reader');
    await waitFor(() => app.simulator!.stats().requests.avatars >= 1, 5000, 'the first avatar call in flight');
    expect((await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' })).status).toBe(200);
    const { status } = await page; // every call of the page has settled
    expect(status).toBe(200);
    const { requests } = app.simulator!.stats();
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    const dropped = counterValue(metrics, 'upstream_calls_skipped_total', { service: 'avatars', reason: 'killed' });
    // The page needed more avatars than the cap: the rest waited, and were dropped at the kill.
    expect(requests.avatars).toBe(CAP);
    expect(dropped).toBeGreaterThan(0);
    expect(counterValue(metrics, 'upstream_calls_skipped_total', { service: 'avatars', reason: 'over_capacity' })).toBe(
      0,
    );
    expect(requests.recommendations).toBe(1); // in flight from the start: it goes on
    // Nothing is left to make: a page after the kill asks the third party for nothing.
    expect((await app.request('/?user=after-the-kill')).text).toContain('data-show-avatars="false"');
    expect(app.simulator!.stats().requests).toEqual(requests);
    console.log(`kill with calls queued: ${requests.avatars} avatar calls made, ${dropped} dropped`);
  });
});

describe('a restore with many pages open', () => {
  const CAP = 2;
  const LATENCY = 30;
  let app: TestApp;
  beforeAll(async () => {
    // A timeout far above the third party's latency: with the suite's other files on both cores,
    // this process can stall long enough for a 30 ms call to pass 800 ms, which the breaker would
    // rightly count as a failure (see the README's known limits).
    app = await startTestApp({
      UPSTREAM_MAX_CONCURRENCY: String(CAP),
      UPSTREAM_TIMEOUT_MS: '3000',
      SIMULATOR_LATENCY_MS: String(LATENCY),
    });
  });
  afterAll(() => app.stop());

  it("kills with no request from any page, then brings every page back live at the third party's pace, never over its cap", async () => {
    // Open pages were rendered live once: the app has measured the third party (one page here).
    expect((await app.request('/?user=first-reader')).status).toBe(200);
    const pages = await Promise.all(Array.from({ length: 60 }, (_, i) => openLightPage(app, `storm-${i}`)));
    const requestsBefore = pages.map((page) => ({ ...page.requests }));
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    await app.realtime.pusher.idle();
    await waitFor(() => pages.every((page) => page.content() === 'killed'), 3000, 'every page killed');
    // The kill cost one push: not one page asked our server (or the third party) for anything.
    expect(pages.map((page) => page.requests)).toEqual(requestsBefore);

    app.simulator!.resetStats();
    const restoredAt = performance.now();
    await app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
    await waitFor(() => pages.every((page) => page.content() === 'live'), 20_000, 'every page live and whole');
    const tookMs = performance.now() - restoredAt;
    const stats = app.simulator!.stats();
    // Never more than the cap in flight per service, as the third party counts them.
    expect(stats.peakInFlightBy.avatars).toBeLessThanOrEqual(CAP);
    expect(stats.peakInFlightBy.recommendations).toBeLessThanOrEqual(CAP);
    expect(stats.peakInFlightBy.recommendations).toBe(CAP); // and the capacity was used
    // No page saw a failure, no breaker opened, and each page showed it was catching up.
    expect(pages.reduce((sum, page) => sum + page.requests.failures, 0)).toBe(0);
    expect(app.upstream.map((client) => client.breakerState())).toEqual(['closed', 'closed']);
    expect(pages.every((page) => page.waits.length > 0)).toBe(true);
    // At the third party's pace: 60 recommendations at 2 in flight and ~30 ms each need ~0.9 s.
    const capacityMs = (stats.requests.recommendations * LATENCY) / CAP;
    console.log(
      `restore of 60 pages at cap ${CAP}: all live in ${Math.round(tookMs)} ms (capacity needs ~${Math.round(capacityMs)} ms), peak ${stats.peakInFlightBy.avatars}/${stats.peakInFlightBy.recommendations}, turns ${pages.reduce((s, p) => s + p.requests.waits, 0)}`,
    );
  });
});
