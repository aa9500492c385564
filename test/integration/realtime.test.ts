import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KILL_SWITCH, RECS_FLAVOUR, THEME } from '../../server/flags/catalog.js';
import { counterValue, nextEvent, record, startTestApp, waitFor, type TestApp } from '../helpers/app.js';

const BETA_OFF = { if: [{ in: ['beta', { var: 'groups' }] }, 'off', null] };

describe('live flag updates over Socket.IO', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(() => app.stop());
  beforeEach(async () => {
    await app.patchFlag(KILL_SWITCH, { state: 'ENABLED', targeting: null });
  });
  afterEach(async () => {
    app.closeSockets();
    await waitFor(() => app.realtime.pusher.browserCount === 0, 3000, 'sockets to close');
  });

  it('sends flag_snapshot on connect, with the kill switch as this viewer sees it', async () => {
    await app.patchFlag(KILL_SWITCH, { targeting: BETA_OFF });
    const beta = await app.socket({ cookie: 'viewer=theo' });
    const other = await app.socket({ cookie: 'viewer=jonas' });
    const anonymous = await app.socket();
    await waitFor(() => [beta, other, anonymous].every((s) => s.snapshots.length === 1), 3000, 'the snapshots');
    // Theo is in the beta: killed for him, and the beta gets the "friends" recommendations.
    expect(beta.snapshots[0]).toEqual({ [KILL_SWITCH]: false, [RECS_FLAVOUR]: 'friends', [THEME]: 'light' });
    expect(other.snapshots[0]).toMatchObject({ [KILL_SWITCH]: true, [THEME]: 'light' });
    expect(['classic', 'trending']).toContain(other.snapshots[0]![RECS_FLAVOUR]);
    expect(Object.keys(anonymous.snapshots[0]!).sort()).toEqual([KILL_SWITCH, RECS_FLAVOUR, THEME].sort());
    for (const socket of [beta, other, anonymous]) socket.disconnect();
  });

  it('pushes a kill to every browser, with the new version, once', async () => {
    const sockets = await Promise.all([
      app.socket({ cookie: 'viewer=maya' }),
      app.socket({ cookie: 'viewer=jonas' }),
      app.socket(),
    ]);
    const seen = sockets.map((socket) => record(socket, 'flag_update'));
    const { body } = await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    await app.delivered(sockets);
    for (const events of seen) expect(events).toEqual([{ key: KILL_SWITCH, value: false, version: body.version }]);
    for (const socket of sockets) socket.disconnect();
  });

  it('pushes only to the browsers whose own value changed (targeting a group)', async () => {
    const beta = await app.socket({ cookie: 'viewer=theo' }); // beta
    const betaTab2 = await app.socket({ cookie: 'viewer=theo' });
    const notBeta = await app.socket({ cookie: 'viewer=jonas' });
    const betaSeen = record(beta, 'flag_update');
    const betaTab2Seen = record(betaTab2, 'flag_update');
    const notBetaSeen = record(notBeta, 'flag_update');
    await app.patchFlag(KILL_SWITCH, { targeting: BETA_OFF });
    await app.delivered([beta, betaTab2, notBeta]);
    expect(betaSeen).toEqual([expect.objectContaining({ key: KILL_SWITCH, value: false })]);
    expect(betaTab2Seen).toEqual([expect.objectContaining({ key: KILL_SWITCH, value: false })]);
    expect(notBetaSeen).toEqual([]);
    for (const socket of [beta, betaTab2, notBeta]) socket.disconnect();
  });

  it("sends nothing when a change does not change anyone's value", async () => {
    const socket = await app.socket({ cookie: 'viewer=sam' });
    const seen = record(socket, 'flag_update');
    // A new variant that nobody is served: the definition changes, the value does not.
    await app.patchFlag(KILL_SWITCH, { variants: { on: true, off: false, spare: false } });
    await app.patchFlag(KILL_SWITCH, { variants: { spare: null } });
    await app.delivered([socket]);
    expect(seen).toEqual([]);
    socket.disconnect();
  });

  it('a browser that was away during a flip converges on reconnect (snapshot)', async () => {
    const socket = await app.socket({ cookie: 'viewer=lena' });
    socket.io.opts.reconnection = false;
    socket.disconnect();
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    const snapshot = nextEvent(socket, 'flag_snapshot');
    socket.connect();
    expect(await snapshot).toMatchObject({ [KILL_SWITCH]: false });
    socket.disconnect();
  });

  it('counts the updates it sends in flag_updates_sent_total', async () => {
    // By key: the kill switch's own count.
    const metrics = async () =>
      counterValue(await (await fetch(`${app.url}/metrics`)).text(), 'flag_updates_sent_total', { key: KILL_SWITCH });
    const before = await metrics();
    const sockets = await Promise.all([app.socket(), app.socket()]);
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    await waitFor(async () => (await metrics()) === before + 2, 3000, 'the counter');
    for (const socket of sockets) socket.disconnect();
  });

  it('a restore tells each page over what window to refetch its live content; a kill needs none; admin pages get neither', async () => {
    const admin = await app.socket({ auth: { role: 'admin' } });
    const sockets = await Promise.all([app.socket({ cookie: 'viewer=maya' }), app.socket({ cookie: 'viewer=lena' })]);
    const seen = sockets.map((socket) => record(socket, 'flag_update'));
    const adminSeen = record(admin, 'flag_update');
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    await app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
    await app.delivered([...sockets, admin]);
    for (const events of seen) {
      expect(events).toHaveLength(2);
      expect(events[0]).not.toHaveProperty('refetchWithinMs');
      expect(events[1]).toMatchObject({ key: KILL_SWITCH, value: true, refetchWithinMs: expect.any(Number) });
      expect(events[1]!.refetchWithinMs).toBeGreaterThan(0);
    }
    expect(adminSeen).toEqual([]);
  });

  it("a viewer's other tab keeps getting pushes when one of its tabs closes", async () => {
    const [first, second] = await Promise.all([
      app.socket({ cookie: 'viewer=priya' }),
      app.socket({ cookie: 'viewer=priya' }),
    ]);
    first.disconnect();
    await waitFor(() => app.realtime.pusher.browserCount === 1, 3000, 'one tab left');
    const update = nextEvent(second, 'flag_update');
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    expect(await update).toMatchObject({ key: KILL_SWITCH, value: false });
  });

  it('browsers cannot change anything over Socket.IO', async () => {
    const socket = await app.socket({ cookie: 'viewer=maya' });
    // What the server reads from this browser (it has no handler for either event).
    const read: string[] = [];
    app.realtime.io
      .of('/')
      .sockets.get(socket.id!)!
      .onAny((event: string) => read.push(event));
    socket.emit('flag_update', { key: KILL_SWITCH, value: false, version: 999 });
    socket.emit('patch', { key: KILL_SWITCH, state: 'DISABLED' });
    await waitFor(() => read.length === 2, 3000, 'the server to read both events');
    expect((await app.request(`/api/flags/${KILL_SWITCH}`)).body.definition.state).toBe('ENABLED');
    expect(socket.connected).toBe(true);
    socket.disconnect();
  });

  it('gives the admin page live state: browsers watching and each change', async () => {
    const admin = await app.socket({ auth: { role: 'admin' } });
    const counts = record(admin, 'admin_browsers');
    const states = record(admin, 'admin_state');
    const viewer = await app.socket({ cookie: 'viewer=priya' });
    await waitFor(() => counts.at(-1) === 1 && app.realtime.pusher.browserCount === 1, 3000, 'the browser count');
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' }, { 'x-actor': 'Priya' });
    await waitFor(
      () => states.some((s) => s.audit[0]?.actor.note === 'Priya' && s.audit[0]?.actor.name === 'admin'),
      3000,
      'the admin state',
    );
    const latest = states.at(-1);
    expect(latest!.flags.find((f) => f.key === KILL_SWITCH)!.definition!.state).toBe('DISABLED');
    viewer.disconnect();
    await waitFor(() => counts.at(-1) === 0, 3000, 'the count to drop');
    admin.disconnect();
  });
});
