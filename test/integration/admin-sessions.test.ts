import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_TTL_MS, SESSIONS_PER_TOKEN } from '../../server/access/sessions.js';
import { digestOf } from '../../server/access/tokens.js';
import { bearer, createToken, get, openAdminSocket, signOut } from '../helpers/access.js';
import { nextEvent, record, startTestApp, startTwoInstances, TEST_TOKEN, type TestApp } from '../helpers/app.js';

// Each describe allows 60 s a test: some run the token CLI, a Node start each (0.4 s here, 5 s
// with two busy loops beside the suite). See FILE_TIMEOUTS in scripts/test-under-load.mjs.

type Client = Awaited<ReturnType<typeof openAdminSocket>>;

/** Resolves once the server has ended this socket's session channel: what it said, and how it closed. */
function endOf(socket: Client) {
  return Promise.all([nextEvent(socket, 'admin_denied'), nextEvent(socket, 'disconnect')]).then(([denied, reason]) => ({
    message: denied.message,
    reason,
  }));
}

/** Still open and still served: a marker the server sends after this reaches it, and it was never told to go. */
async function expectStillServed(app: TestApp, socket: Client, denied: unknown[]) {
  await app.delivered([socket]);
  expect(socket.connected).toBe(true);
  expect(denied).toEqual([]);
}

describe("an admin socket opened with the page's session", { timeout: 60_000 }, () => {
  let app: TestApp;
  // The sessions' clock: a test moves it past a session's end instead of waiting 12 h.
  let ahead = 0;
  beforeAll(async () => {
    app = await startTestApp({}, { start: { now: () => Date.now() + ahead } });
  });
  afterAll(() => app.stop());

  it('ends at its sign-out, told why first; the socket of another session (a second tab) stays', async () => {
    const [leaving, staying] = [await app.signIn(), await app.signIn()];
    const closing = await openAdminSocket(app, { cookie: leaving.cookie });
    const other = await openAdminSocket(app, { cookie: staying.cookie });
    const otherDenied = record(other, 'admin_denied');
    const ended = endOf(closing);

    expect(await signOut(app, leaving)).toBe(303);
    expect(await ended).toEqual({ message: expect.stringMatching(/signed out/), reason: 'io server disconnect' });
    await expectStillServed(app, other, otherDenied);
    expect((await get(app, '/api/flags', { cookie: staying.cookie })).status).toBe(200);
    other.close();
  });

  it('ends at its expiry, told why first', async () => {
    const session = await app.signIn();
    const socket = await openAdminSocket(app, { cookie: session.cookie });
    const ended = endOf(socket);

    ahead += SESSION_TTL_MS;
    // The channel checks expiry once a second: the bound only guards a slow machine.
    expect(await ended).toEqual({ message: expect.stringMatching(/expired/), reason: 'io server disconnect' });
    expect((await get(app, '/api/flags', { cookie: session.cookie })).status).toBe(401);
  });
});

describe('sessions per token', { timeout: 60_000 }, () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(() => app.stop());

  it("a read-only token's 25 sign-ins leave the full token's session, and its socket, as they were", async () => {
    const admin = await app.signIn(TEST_TOKEN);
    const socket = await openAdminSocket(app, { cookie: admin.cookie });
    const denied = record(socket, 'admin_denied');
    const kiosk = await createToken(app, 'kiosk', '--read-only');
    for (let i = 0; i < 25; i++) expect((await app.signIn(kiosk)).status).toBe(303);

    expect((await get(app, '/api/flags', { cookie: admin.cookie })).status).toBe(200);
    await expectStillServed(app, socket, denied);
    socket.close();
  });

  it(`the ${SESSIONS_PER_TOKEN + 1}st sign-in of one token ends its oldest session, and that session's socket, told why`, async () => {
    const token = await createToken(app, 'rotating');
    const oldest = await app.signIn(token);
    const socket = await openAdminSocket(app, { cookie: oldest.cookie });
    const second = await app.signIn(token);
    for (let i = 2; i < SESSIONS_PER_TOKEN; i++) await app.signIn(token);
    // Twenty: all of them live.
    expect((await get(app, '/api/flags', { cookie: oldest.cookie })).status).toBe(200);
    const ended = endOf(socket);

    expect((await app.signIn(token)).status).toBe(303);
    expect(await ended).toEqual({
      message: expect.stringMatching(/signed in 20 more times/),
      reason: 'io server disconnect',
    });
    expect((await get(app, '/api/flags', { cookie: oldest.cookie })).status).toBe(401);
    expect((await get(app, '/api/flags', { cookie: second.cookie })).status).toBe(200);
    expect((await get(app, '/api/flags', bearer(token))).status).toBe(200);
  });
});

describe('sign-ins per address', { timeout: 60_000 }, () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ SIGN_INS_PER_15_MIN: '3' });
  });
  afterAll(() => app.stop());

  it('are limited, right tokens included: past the limit the sign-in page answers 429 with Retry-After, and starts no session', async () => {
    for (let i = 0; i < 3; i++) expect((await app.signIn()).status).toBe(303);
    const refused = await fetch(`${app.url}/admin/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: app.url },
      body: new URLSearchParams({ token: TEST_TOKEN }),
      redirect: 'manual',
    });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(800);
    expect(refused.headers.getSetCookie()).toEqual([]);
    const page = await refused.text();
    expect(page).toContain('id="sign-in-form"');
    expect(page).toMatch(/Too many sign-ins from this address\. Try again in \d+ s\./);
    // A token used directly is not a sign-in.
    expect((await get(app, '/api/flags', bearer(TEST_TOKEN))).status).toBe(200);
  });
});

describe('admin sessions on two instances sharing Redis', { timeout: 60_000 }, () => {
  let instances: Awaited<ReturnType<typeof startTwoInstances>>;
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    instances = await startTwoInstances();
    ({ a, b } = instances);
  });
  afterAll(() => instances?.stop());

  it("signing out on A ends the session's socket on B, told why first", async () => {
    const session = await a.signIn();
    const socket = await openAdminSocket(b, { cookie: session.cookie });
    const ended = endOf(socket);

    expect(await signOut(a, session)).toBe(303);
    expect(await ended).toEqual({ message: expect.stringMatching(/signed out/), reason: 'io server disconnect' });
  });

  it('the per-token cap holds across instances: sign-ins on B end the oldest session, and its socket on A', async () => {
    const token = await createToken(a, 'fleet-kiosk', '--read-only');
    const oldest = await a.signIn(token);
    const socket = await openAdminSocket(a, { cookie: oldest.cookie });
    const ended = endOf(socket);
    // All at once, as a script would: the cap must hold however they interleave.
    await Promise.all(Array.from({ length: SESSIONS_PER_TOKEN }, () => b.signIn(token)));

    expect(await ended).toEqual({
      message: expect.stringMatching(/signed in 20 more times/),
      reason: 'io server disconnect',
    });
    expect((await get(a, '/api/flags', { cookie: oldest.cookie })).status).toBe(401);
    // In Redis: the token's twenty, each one's session there.
    const inside = instances.redis.client();
    const kept = await inside.zrange(`killswitch:sessions-of:${digestOf(token)}`, 0, -1);
    expect(kept).toHaveLength(SESSIONS_PER_TOKEN);
    expect(await inside.exists(...kept.map((key) => `killswitch:session:${key}`))).toBe(SESSIONS_PER_TOKEN);
    inside.disconnect();
  });
});
