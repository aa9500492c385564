import { integrations } from '@launchdarkly/node-server-sdk';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH, RECS_FLAVOUR, THEME } from '../../server/flags/catalog.js';
import { record, startTestApp, waitFor, type TestApp } from '../helpers/app.js';

/**
 * LaunchDarkly through its own Node server SDK and OpenFeature provider, fed by the SDK's
 * TestData data source: no network, the real SDK evaluating real flag rules.
 */
describe('flags from LaunchDarkly', () => {
  let app: TestApp;
  const td = new integrations.TestData();

  beforeAll(async () => {
    await td.update(td.flag(KILL_SWITCH).booleanFlag().variationForAll(true));
    await td.update(td.flag(RECS_FLAVOUR).variations('classic', 'trending', 'friends').variationForAll(0));
    await td.update(td.flag(THEME).variations('light', 'dark', 'aurora').variationForAll(0));
    app = await startTestApp(
      { LAUNCHDARKLY_SDK_KEY: 'sdk-test-key' },
      { start: { launchDarkly: { updateProcessor: td.getFactory(), sendEvents: false, diagnosticOptOut: true } } },
    );
  });
  afterAll(() => app.stop());
  afterEach(() => app.closeSockets());

  it('is ready, renders from LaunchDarkly, and refuses writes here (read-only)', async () => {
    expect(await app.request('/readyz')).toMatchObject({ status: 200, body: { detail: 'flags from LaunchDarkly' } });
    expect((await app.request('/?user=maya')).text).toContain('data-show-avatars="true"');
    const write = await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    expect(write.status).toBe(405);
    expect(write.body.message).toMatch(/launchdarkly.*read-only/i);
    const admin = await app.request('/admin', { headers: { cookie: (await app.signIn()).cookie } });
    expect(admin.text).toContain('launchdarkly');
  });

  it('a flip in LaunchDarkly reaches every browser, and the feed stops calling the third party', async () => {
    const sockets = await Promise.all([app.socket({ cookie: 'viewer=maya' }), app.socket({ cookie: 'viewer=jonas' })]);
    await waitFor(() => sockets.every((s) => s.snapshots.length === 1));
    expect(sockets[0].snapshots[0]).toEqual({ [KILL_SWITCH]: true, [RECS_FLAVOUR]: 'classic', [THEME]: 'light' });
    const seen = sockets.map((s) => record(s, 'flag_update'));

    await td.update(td.flag(KILL_SWITCH).booleanFlag().variationForAll(false));
    await waitFor(() => seen.every((events) => events.length === 1), 3000, 'the kill');
    expect(seen[0]![0]).toMatchObject({ key: KILL_SWITCH, value: false, version: expect.any(Number) });

    app.simulator!.resetStats();
    expect((await app.request('/?user=maya')).text).toContain('data-show-avatars="false"');
    expect(app.simulator!.stats().total).toBe(0);
    await td.update(td.flag(KILL_SWITCH).booleanFlag().variationForAll(true));
    await waitFor(() => seen.every((events) => events.length === 2), 3000, 'the restore');
  });

  it("a per-user rule in LaunchDarkly reaches only that user's sockets", async () => {
    const theo = await app.socket({ cookie: 'viewer=theo' });
    const theoTab2 = await app.socket({ cookie: 'viewer=theo' });
    const sam = await app.socket({ cookie: 'viewer=sam' });
    await waitFor(() => [theo, theoTab2, sam].every((s) => s.snapshots.length === 1));
    const [theoSeen, tab2Seen, samSeen] = [
      record(theo, 'flag_update'),
      record(theoTab2, 'flag_update'),
      record(sam, 'flag_update'),
    ];

    await td.update(
      td.flag(THEME).variations('light', 'dark', 'aurora').variationForUser('theo', 2).fallthroughVariation(0),
    );
    await waitFor(() => theoSeen.length === 1 && tab2Seen.length === 1, 3000, 'theo');
    // Theo's update and any for Sam come from one push: once it is delivered, Sam has all his.
    await app.delivered([sam]);
    expect(theoSeen[0]).toMatchObject({ key: THEME, value: 'aurora' });
    expect(samSeen).toEqual([]);

    // Groups map to a custom attribute of the LaunchDarkly context.
    await td.update(
      td.flag(KILL_SWITCH).booleanFlag().ifMatch('user', 'groups', 'beta').thenReturn(false).fallthroughVariation(true),
    );
    await waitFor(() => theoSeen.length === 2, 3000, 'the beta rule');
    await app.delivered([sam]);
    expect(theoSeen[1]).toMatchObject({ key: KILL_SWITCH, value: false });
    expect(samSeen).toEqual([]);
    await td.update(td.flag(KILL_SWITCH).booleanFlag().variationForAll(true));
  });
});

describe('LaunchDarkly out of reach at start-up', () => {
  let app: TestApp;
  afterAll(() => app?.stop());

  it('starts within the bound, serves the safe defaults (killed), and says why in /readyz', async () => {
    const started = performance.now();
    // Loopback ports with nothing listening: the SDK's connections are refused, nothing leaves the machine.
    app = await startTestApp(
      { LAUNCHDARKLY_SDK_KEY: 'sdk-unreachable', LAUNCHDARKLY_INIT_TIMEOUT_MS: '300' },
      {
        start: {
          launchDarkly: {
            streamUri: 'http://127.0.0.1:9',
            baseUri: 'http://127.0.0.1:9',
            eventsUri: 'http://127.0.0.1:9',
            sendEvents: false,
            diagnosticOptOut: true,
          },
        },
      },
    );
    expect(performance.now() - started).toBeLessThan(5000);
    const ready = await app.request('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.detail).toMatch(/LaunchDarkly has not answered after 300 ms; serving safe defaults/);
    app.simulator!.resetStats();
    const page = await app.request('/?user=maya');
    expect(page.status).toBe(200);
    expect(page.text).toContain('data-show-avatars="false"');
    expect(app.simulator!.stats().total).toBe(0);
  });
});

describe('LaunchDarkly answering after the start-up bound', () => {
  let app: TestApp;
  afterAll(() => app?.stop());

  it('serves the safe defaults meanwhile, then pushes the real values to the browsers already open', async () => {
    const td = new integrations.TestData();
    await td.update(td.flag(KILL_SWITCH).booleanFlag().variationForAll(true));
    await td.update(td.flag(RECS_FLAVOUR).variations('classic', 'trending', 'friends').variationForAll(1));
    await td.update(td.flag(THEME).variations('light', 'dark', 'aurora').variationForAll(1));
    // The SDK's data source starts (delivers its flags, says it is initialized) only when the
    // test lets it: after the start-up bound, as a slow connection to LaunchDarkly would.
    let initialize: (() => void) | undefined;
    const factory = td.getFactory() as (...args: unknown[]) => { start(): unknown; stop(): void; close(): void };
    const slowSource = (...args: unknown[]) => {
      const source = factory(...args);
      return {
        start: () => void (initialize = () => void source.start()),
        stop: () => source.stop(),
        close: () => source.close(),
      };
    };
    app = await startTestApp(
      { LAUNCHDARKLY_SDK_KEY: 'sdk-late-key', LAUNCHDARKLY_INIT_TIMEOUT_MS: '100' },
      { start: { launchDarkly: { updateProcessor: slowSource as never, sendEvents: false, diagnosticOptOut: true } } },
    );
    expect((await app.request('/readyz')).status).toBe(503);
    const socket = await app.socket({ cookie: 'viewer=maya' });
    expect(socket.snapshots[0]).toEqual({ [KILL_SWITCH]: false, [RECS_FLAVOUR]: 'classic', [THEME]: 'light' });
    const seen = record(socket, 'flag_update');

    await waitFor(() => initialize !== undefined, 3000, 'the data source to start');
    initialize!();
    await waitFor(() => seen.length === 3, 3000, 'the real values');
    expect(Object.fromEntries(seen.map((update) => [update.key, update.value]))).toEqual({
      [KILL_SWITCH]: true,
      [RECS_FLAVOUR]: 'trending',
      [THEME]: 'dark',
    });
    expect((await app.request('/readyz')).status).toBe(200);
  });
});
