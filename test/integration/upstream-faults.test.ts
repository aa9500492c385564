import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import type { SimulatorMode } from '../../server/upstream/simulator.js';
import { counterValue, record, sleep, startTestApp, waitFor, type TestApp } from '../helpers/app.js';

const TIMEOUT = 300;

describe('the page always answers, whatever the third party does', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ UPSTREAM_TIMEOUT_MS: String(TIMEOUT) });
  });
  afterAll(() => app.stop());
  afterEach(() => app.simulator!.setKnobs({ mode: 'normal', latencyMs: 5, errorRate: 0 }));

  it.each<[SimulatorMode, string]>([
    ['hang', 'timeout'],
    ['fail', 'error'],
    ['garbage', 'invalid'],
    ['slow', 'timeout'],
  ])('third party in mode %s: 200 with the fallbacks within the timeout, counted as %s', async (mode, outcome) => {
    app.simulator!.setKnobs({ mode });
    const before = counterValue(await (await fetch(`${app.url}/metrics`)).text(), 'upstream_requests_total', { outcome });
    // A new viewer each time: nothing cached to hide behind.
    const started = performance.now();
    const { status, text } = await app.request(`/?user=fault-${mode}`);
    const elapsed = performance.now() - started;
    expect(status).toBe(200);
    expect(text).toContain('data-source="fallback"');
    expect(text).toContain('data-show-avatars="true"');
    expect(text).toContain('/static/img/fallback-avatar.svg');
    expect(elapsed).toBeLessThan(TIMEOUT + 1200); // about one timeout, never the fault's own duration
    const after = counterValue(await (await fetch(`${app.url}/metrics`)).text(), 'upstream_requests_total', { outcome });
    expect(after).toBeGreaterThan(before);
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
    const states = record<any>(admin, 'admin_state');
    app.simulator!.setKnobs({ mode: 'fail' });
    for (let i = 0; i < 6; i++) await app.request(`/?user=breaker-${i}`);

    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    // The avatars breaker opens first (nine calls a page); the kill then stops every other call.
    expect(metrics).toMatch(/upstream_breaker_state\{service="\w+"\} 2/);
    await waitFor(() => updates.some((u) => u.key === KILL_SWITCH && u.value === false), 3000, 'the automatic kill');
    const audit = (await app.request('/api/audit?limit=5')).body.entries;
    expect(audit[0]).toMatchObject({ key: KILL_SWITCH, summary: 'killed (disabled)', actor: { source: 'auto', name: expect.stringMatching(/auto-kill: circuit breaker for \w+ opened/) } });
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

describe('a restore with many browsers open', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ UPSTREAM_MAX_CONCURRENCY: '4', UPSTREAM_TIMEOUT_MS: '2000', SIMULATOR_LATENCY_MS: '20' });
  });
  afterAll(() => app.stop());

  it('keeps third-party concurrency under its cap, and no viewer sees an error', async () => {
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    await app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
    app.simulator!.resetStats();
    // 300 browsers refetch their live region at once (the worst case: no jitter), all new viewers.
    const responses = await Promise.all(
      Array.from({ length: 300 }, (_, i) => fetch(`${app.url}/fragments/feed`, { headers: { cookie: `viewer=storm-${i}` } })),
    );
    expect(responses.every((r) => r.status === 200)).toBe(true);
    const stats = app.simulator!.stats();
    // 4 per service: avatars and recommendations.
    expect(stats.peakInFlight).toBeLessThanOrEqual(8);
    expect(stats.requests.recommendations).toBeGreaterThan(0);
    console.log(`restore storm (300 at once, cap 4 per service): peak third-party concurrency ${stats.peakInFlight}, calls ${stats.total}`);
  });
});
