import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH, pageFlagKeys } from '../../server/flags/catalog.js';
import { adminSocket, bearer, createToken, get, tokenCli } from '../helpers/access.js';
import { record, startTestApp, startTwoInstances, TEST_TOKEN, waitFor, type TestApp } from '../helpers/app.js';

// Each describe allows 60 s a test: the tests run the token CLI, a Node start each (0.4 s here,
// 5 s with two busy loops beside the suite). See FILE_TIMEOUTS in scripts/test-under-load.mjs.
const READS = ['/api/flags', `/api/flags/${KILL_SWITCH}`, '/api/audit', '/api/explain?user=maya'];

const patch = (app: TestApp, headers: Record<string, string>, body: unknown = { state: 'ENABLED' }) =>
  fetch(`${app.url}/api/flags/${KILL_SWITCH}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/merge-patch+json', ...headers },
    body: JSON.stringify(body),
  });

describe('who may read and who may write', { timeout: 60_000 }, () => {
  let app: TestApp;
  let reader: string;
  let writer: string;
  let revoked: string;
  beforeAll(async () => {
    app = await startTestApp({ API_RATE_LIMIT_PER_MIN: '100000' });
    [reader, writer, revoked] = await Promise.all([
      createToken(app, 'dashboards', '--read-only'),
      createToken(app, 'ci-bot'),
      createToken(app, 'left-the-team'),
    ]);
    expect((await tokenCli(app, 'create', 'never-used')).code).toBe(0);
    expect((await tokenCli(app, 'revoke', 'left-the-team')).code).toBe(0);
    await waitFor(async () => (await get(app, '/api/flags', bearer(revoked))).status === 401, 10_000, 'the revocation');
  }, 60_000);
  afterAll(() => app.stop());

  it('keeps only a hash of each token, in a file only its owner reads; list shows names, scopes and use, never a token', async () => {
    const file = path.join(app.dir, 'tokens.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const kept = await readFile(file, 'utf8');
    expect(kept).not.toContain(reader);
    expect(kept).not.toContain(writer);
    expect(kept).toContain('dashboards');

    expect((await get(app, '/api/flags', bearer(reader))).status).toBe(200);
    const listed = await tokenCli(app, 'list');
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toMatch(/ks_/);
    const rows = listed.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^NAME\s+SCOPE\s+CREATED\s+LAST USED$/);
    expect(rows.find((row) => row.startsWith('dashboards'))).toMatch(
      /^dashboards\s+read-only\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC$/,
    );
    expect(rows.find((row) => row.startsWith('ci-bot'))).toMatch(/^ci-bot\s+full\s+\S+ \S+ UTC\s+\S+ \S+ UTC$/);
    expect(rows.find((row) => row.startsWith('never-used'))).toMatch(/^never-used\s+full\s+\S+ \S+ UTC\s+-$/);
    expect(rows.find((row) => row.startsWith('admin'))).toMatch(/^admin\s+full\s+ADMIN_TOKEN/);
  });

  it('refuses a name that is taken, the admin name, and a bad name, each with one line', async () => {
    for (const [args, message] of [
      [['create', 'ci-bot'], /exists/],
      [['create', 'admin'], /ADMIN_TOKEN/],
      [['create', 'Not A Name'], /lowercase/],
      [['revoke', 'admin'], /ADMIN_TOKEN/],
      [['revoke', 'nobody'], /no token named "nobody"/],
    ] as const) {
      const result = await tokenCli(app, ...args);
      expect(result.code).toBe(1);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(message);
    }
  });

  it.each(READS)(
    'GET %s: 401 without a token, with a wrong one or a revoked one; 200 with any valid one, read-only included',
    async (pathname) => {
      const none = await get(app, pathname);
      expect(none.status).toBe(401);
      expect((await none.json()).message).toMatch(/Authorization: Bearer/);
      expect((await get(app, pathname, bearer('ks_not-a-token-at-all'))).status).toBe(401);
      expect((await get(app, pathname, bearer(revoked))).status).toBe(401);
      expect((await get(app, pathname, { authorization: 'Basic YWRtaW46YWRtaW4=' })).status).toBe(401);
      for (const token of [TEST_TOKEN, reader, writer])
        expect((await get(app, pathname, bearer(token))).status).toBe(200);
    },
  );

  it('keeps the feed and its socket public; a viewer still learns only its own values', async () => {
    expect((await get(app, '/?user=maya')).status).toBe(200);
    const viewer = await app.socket({ cookie: 'viewer=maya' });
    expect(Object.keys(viewer.snapshots[0]!).sort()).toEqual([...pageFlagKeys].sort());
    viewer.close();
  });

  it('the admin socket: refused with a revoked token, open with a read-only one', async () => {
    expect(await adminSocket(app, { token: revoked })).toEqual({ refused: expect.stringMatching(/revoked/) });
    const watching = await adminSocket(app, { token: reader });
    if ('refused' in watching) throw new Error(watching.refused);
    await waitFor(() => watching.states.length > 0, 3000, 'the admin state');
    watching.socket.close();
  });

  it('a read-only token cannot write: 403 saying so, and nothing changes', async () => {
    const before = (await app.request(`/api/flags/${KILL_SWITCH}`)).body.version;
    const refused = await patch(app, bearer(reader), { state: 'DISABLED' });
    expect(refused.status).toBe(403);
    expect((await refused.json()).message).toMatch(/"dashboards" is read-only/);
    expect((await app.request(`/api/flags/${KILL_SWITCH}`)).body.version).toBe(before);
  });

  it('the audit names the token that wrote; X-Actor is a note beside it, never in its place', async () => {
    const written = await patch(
      app,
      { ...bearer(writer), 'x-actor': 'admin', 'x-change-source': 'cli' },
      { variants: { probe: false } },
    );
    expect(written.status).toBe(200);
    await patch(app, { ...bearer(writer), 'x-actor': 'nightly deploy' }, { variants: { probe: null } });
    const { entries } = (await app.request('/api/audit?limit=2')).body;
    expect(entries[0].actor).toEqual({
      source: 'api',
      name: 'ci-bot',
      note: 'nightly deploy',
      address: expect.any(String),
    });
    // Claiming to be "admin" does not make it so: the name stays the token's, and the claim is dropped as a note.
    expect(entries[1].actor).toMatchObject({ source: 'cli', name: 'ci-bot' });
    expect(entries[1].actor.note).toBe('admin');
  });

  it('revoking a token takes effect at once: reads 401, and its admin socket is told why and closed', async () => {
    const doomed = await createToken(app, 'doomed', '--read-only');
    expect((await get(app, '/api/flags', bearer(doomed))).status).toBe(200);
    const admin = await adminSocket(app, { token: doomed });
    if ('refused' in admin) throw new Error(admin.refused);
    // Recorded from now, waited for only once the CLI is done: a wait started before it would
    // spend its time on the CLI's own start (5 s on a busy machine), not on the server.
    const denied = record(admin.socket, 'admin_denied');
    const closed = record(admin.socket, 'disconnect');

    const revoked = await tokenCli(app, 'revoke', 'doomed');
    expect(revoked.code).toBe(0);
    // At once: the servers watch the store (no restart, no polling); the bound only guards a slow machine.
    await waitFor(async () => (await get(app, '/api/flags', bearer(doomed))).status === 401, 10_000, 'the revocation');
    await waitFor(() => closed.length > 0, 5000, 'the admin socket closed');
    expect(denied.map((event) => event.message)).toEqual([expect.stringMatching(/"doomed" was revoked/)]);
    expect(closed).toEqual(['io server disconnect']);
    expect((await get(app, '/api/flags', bearer(reader))).status).toBe(200);
  });
});

describe('the admin live channel', { timeout: 60_000 }, () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(() => app.stop());

  it('refuses a socket without a valid token, and says why; it gets no admin event', async () => {
    for (const credentials of [{}, { token: 'ks_wrong' }, { token: '' }]) {
      const result = await adminSocket(app, credentials);
      expect(result).toEqual({ refused: expect.stringMatching(/token/) });
    }
  });

  it('a read-only token watches: it gets the admin state and the figures', async () => {
    const reader = await createToken(app, 'watcher', '--read-only');
    const result = await adminSocket(app, { token: reader });
    if ('refused' in result) throw new Error(result.refused);
    await waitFor(() => result.states.length > 0, 3000, 'the admin state');
    result.socket.close();
  });
});

describe('the admin page session', { timeout: 60_000 }, () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(() => app.stop());

  it('/admin without a session shows the sign-in form and nothing of the flags or the audit', async () => {
    const page = await (await get(app, '/admin')).text();
    expect(page).toContain('id="sign-in-form"');
    expect(page).not.toContain('initial-state');
    expect(page).not.toContain(KILL_SWITCH);
  });

  it('checks the token at sign-in: 401 with a message for a wrong one; a session cookie no script can read for a right one', async () => {
    const wrong = await app.signIn('ks_wrong-token');
    expect(wrong.status).toBe(401);
    const response = await fetch(`${app.url}/admin/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: app.url },
      body: new URLSearchParams({ token: TEST_TOKEN }),
      redirect: 'manual',
    });
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe('/admin');
    const cookie = response.headers.getSetCookie()[0]!;
    expect(cookie).toMatch(/^ks_admin=[A-Za-z0-9_-]{43};/);
    expect(cookie).toMatch(/; HttpOnly/i);
    expect(cookie).toMatch(/; SameSite=Strict/i);
    expect(cookie).not.toContain(TEST_TOKEN);
    const page = await (await get(app, '/admin', { cookie: cookie.split(';')[0]! })).text();
    expect(page).toContain('Signed in as <span id="principal-name">admin</span>');
    expect(page).toContain('initial-state');
  });

  it('says clearly when the token is read-only', async () => {
    const { cookie } = await app.signIn(await createToken(app, 'viewer-only', '--read-only'));
    const page = await (await get(app, '/admin', { cookie })).text();
    expect(page).toContain('data-scope="read-only"');
    expect(page).toMatch(/Read-only:<\/strong> you can watch everything here, and change nothing/);
    expect(
      (await patch(app, { cookie, 'x-csrf-token': /<meta name="csrf-token" content="([^"]+)">/.exec(page)![1]! }))
        .status,
    ).toBe(403);
  });

  it('writes with the session need its CSRF token and our own origin: a cookie replayed from another site is refused', async () => {
    const { cookie, csrf } = await app.signIn();
    expect((await get(app, '/api/flags', { cookie })).status).toBe(200);
    expect((await patch(app, { cookie })).status).toBe(403);
    expect((await patch(app, { cookie, 'x-csrf-token': 'guessed' })).status).toBe(403);
    const crossSite = await patch(app, {
      cookie,
      'x-csrf-token': csrf,
      origin: 'https://evil.example',
      'sec-fetch-site': 'cross-site',
    });
    expect(crossSite.status).toBe(403);
    expect((await crossSite.json()).error).toBe('cross_site');
    const own = { cookie, 'x-csrf-token': csrf, origin: app.url, 'sec-fetch-site': 'same-origin', 'x-actor': 'Maya' };
    expect((await patch(app, own, { variants: { probe: false } })).status).toBe(200);
    expect((await app.request('/api/audit?limit=1')).body.entries[0].actor).toMatchObject({
      name: 'admin',
      note: 'Maya',
    });

    // Signing in from another site's form is refused too.
    const foreign = await fetch(`${app.url}/admin/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
      body: new URLSearchParams({ token: TEST_TOKEN }),
      redirect: 'manual',
    });
    expect(foreign.status).toBe(403);
  });

  it('the admin socket accepts the session from our own page, and not from another site', async () => {
    const { cookie } = await app.signIn();
    const own = await adminSocket(app, { cookie, origin: app.url });
    if ('refused' in own) throw new Error(own.refused);
    await waitFor(() => own.states.length > 0, 3000, 'the admin state');
    own.socket.close();
    expect(await adminSocket(app, { cookie, origin: 'https://evil.example' })).toEqual({ refused: expect.any(String) });
  });

  it('signing out ends the session: the old cookie replayed is refused everywhere', async () => {
    const { cookie, csrf } = await app.signIn();
    const out = await fetch(`${app.url}/admin/sign-out`, {
      method: 'POST',
      headers: { cookie, origin: app.url, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf }),
      redirect: 'manual',
    });
    expect(out.status).toBe(303);
    expect(out.headers.getSetCookie()[0]).toMatch(/^ks_admin=;/);
    expect((await get(app, '/api/flags', { cookie })).status).toBe(401);
    expect(await (await get(app, '/admin', { cookie })).text()).toContain('id="sign-in-form"');
    expect(await adminSocket(app, { cookie })).toEqual({ refused: expect.any(String) });
  });

  it('a revoked token ends its sessions', async () => {
    const { cookie } = await app.signIn(await createToken(app, 'short-lived'));
    expect((await get(app, '/api/flags', { cookie })).status).toBe(200);
    expect((await tokenCli(app, 'revoke', 'short-lived')).code).toBe(0);
    await waitFor(async () => (await get(app, '/api/flags', { cookie })).status === 401, 10_000, 'the session to end');
  });
});

describe('failed authentication', { timeout: 60_000 }, () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ AUTH_FAILURES_PER_15_MIN: '3' });
  });
  afterAll(() => app.stop());

  it('is limited per address: past the limit every attempt is refused (429, Retry-After), the right token included', async () => {
    // No credential at all is not an attempt: it does not count.
    for (let i = 0; i < 5; i++) expect((await get(app, '/api/flags')).status).toBe(401);
    expect((await get(app, '/api/flags', bearer(TEST_TOKEN))).status).toBe(200);

    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await get(app, '/api/flags', bearer(`ks_guess-${i}`))).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
    const blocked = await get(app, '/api/flags', bearer(TEST_TOKEN));
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(800);
    expect((await blocked.json()).message).toMatch(/Too many failed authentications/);
    expect((await app.signIn()).status).toBe(429);
    expect(await adminSocket(app, { token: TEST_TOKEN })).toEqual({
      refused: expect.stringMatching(/Too many failed/),
    });
    // The feed is not behind it.
    expect((await get(app, '/?user=maya')).status).toBe(200);
  });
});

describe('tokens and sessions with Redis', { timeout: 60_000 }, () => {
  let instances: Awaited<ReturnType<typeof startTwoInstances>>;
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    instances = await startTwoInstances();
    ({ a, b } = instances);
  });
  afterAll(() => instances?.stop());

  it('a token made once works on every instance, and its revocation reaches the other instance at once', async () => {
    const token = await createToken(a, 'fleet-bot');
    await waitFor(async () => (await get(b, '/api/flags', bearer(token))).status === 200, 10_000, 'the token on B');
    const admin = await adminSocket(b, { token });
    if ('refused' in admin) throw new Error(admin.refused);
    // Recorded from now; waited for from when the CLI is done (see the revocation test above).
    const denied = record(admin.socket, 'admin_denied');

    expect((await tokenCli(a, 'revoke', 'fleet-bot')).code).toBe(0);
    await waitFor(
      async () => (await get(b, '/api/flags', bearer(token))).status === 401,
      10_000,
      'the revocation on B',
    );
    expect((await get(a, '/api/flags', bearer(token))).status).toBe(401);
    await waitFor(() => denied.length > 0, 5000, 'admin_denied on B');
    expect(denied.map((event) => event.message)).toEqual([expect.stringMatching(/"fleet-bot" was revoked/)]);
    admin.socket.close();
  });

  it('a session started on one instance is valid on the other, and ends on both', async () => {
    const { cookie, csrf } = await a.signIn();
    expect((await get(b, '/api/flags', { cookie })).status).toBe(200);
    await fetch(`${b.url}/admin/sign-out`, {
      method: 'POST',
      headers: { cookie, origin: b.url, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf }),
      redirect: 'manual',
    });
    expect((await get(a, '/api/flags', { cookie })).status).toBe(401);
  });
});
