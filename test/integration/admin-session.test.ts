import { request } from 'node:http';
import { io as connect } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTokenCommand } from '../../server/access/token-command.js';
import { createFileTokenStore } from '../../server/access/token-store.js';
import { TOKEN_IN_TEXT } from '../../server/access/tokens.js';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { createLogger } from '../../server/observability/logger.js';
import { record, startTestApp, TEST_TOKEN, waitFor, type TestApp } from '../helpers/app.js';

// The admin page's session and the origin checks, against the real app in this process (so that a
// mutation run sees them). Tokens are made and revoked with the token command's own code, on the
// store the app watches, as `npm run token` does; the CLI as a process is tested in access.test.ts.

/** `npm run token -- ...args` on this app's token file; what it printed. */
async function tokenCommand(app: TestApp, ...args: string[]): Promise<string> {
  const lines: string[] = [];
  const code = await runTokenCommand(
    args,
    createFileTokenStore({ dir: app.dir, logger: createLogger('silent') }),
    (line) => lines.push(line),
  );
  expect(code).toBe(0);
  return lines.join('\n');
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const get = (app: TestApp, pathname: string, headers: Record<string, string> = {}) =>
  fetch(`${app.url}${pathname}`, { headers });
const form = (app: TestApp, pathname: string, headers: Record<string, string>, body: Record<string, string>) =>
  fetch(`${app.url}${pathname}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(body),
    redirect: 'manual',
  });
const patch = (app: TestApp, headers: Record<string, string>, body: unknown = { variants: { probe: false } }) =>
  fetch(`${app.url}/api/flags/${KILL_SWITCH}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/merge-patch+json', ...headers },
    body: JSON.stringify(body),
  });

/** Makes a token and gives it once the app knows it (it watches the token file). */
async function createToken(app: TestApp, name: string, ...flags: string[]): Promise<string> {
  const token = TOKEN_IN_TEXT.exec(await tokenCommand(app, 'create', name, ...flags))![0];
  await waitFor(
    async () => (await get(app, '/api/flags', bearer(token))).status === 200,
    10_000,
    `the token ${name} to be known`,
  );
  return token;
}

/** Whether the session of this cookie is live: what its reads and the admin page say. */
async function sessionWorks(app: TestApp, cookie: string): Promise<boolean> {
  const read = (await get(app, '/api/flags', { cookie })).status;
  const page = await (await get(app, '/admin', { cookie })).text();
  const signedIn = page.includes('id="principal-name"');
  expect(signedIn).toBe(read === 200);
  return read === 200;
}

/** An admin socket with exactly these headers and credentials: whether it was let in, or why not. */
function adminSocket(app: TestApp, options: { token?: unknown; headers?: Record<string, string> } = {}) {
  const socket = connect(app.url, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    auth: options.token === undefined ? { role: 'admin' } : { role: 'admin', token: options.token },
    extraHeaders: options.headers ?? {},
  });
  return new Promise<'connected' | { refused: string }>((resolve) => {
    socket.once('connect', () => {
      socket.close();
      resolve('connected');
    });
    socket.once('connect_error', (error) => {
      socket.close();
      resolve({ refused: error.message });
    });
  });
}

/** An admin socket that stays open (as a page's): rejects when it is refused. */
function openAdminSocket(app: TestApp, options: { token?: string; headers?: Record<string, string> }) {
  const socket = connect(app.url, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    auth: options.token === undefined ? { role: 'admin' } : { role: 'admin', token: options.token },
    extraHeaders: options.headers ?? {},
  });
  return new Promise<typeof socket>((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', reject);
  });
}

describe('the admin page session, from this origin only', { timeout: 60_000 }, () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ API_RATE_LIMIT_PER_MIN: '100000' });
  });
  afterAll(() => app.stop());

  it('a session cookie lasts twelve hours, and no script can read it', async () => {
    const started = Date.now();
    const response = await form(
      app,
      '/admin/sign-in',
      { origin: app.url, 'sec-fetch-site': 'same-origin' },
      { token: TEST_TOKEN },
    );
    expect(response.status).toBe(303);
    const cookie = response.headers.getSetCookie()[0]!;
    expect(cookie).toMatch(/; Max-Age=43200;/);
    expect(cookie).toMatch(/; Path=\/;/);
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; SameSite=Strict/);
    // Not Secure here (plain HTTP): a Secure cookie would never come back.
    expect(cookie).not.toMatch(/; Secure/i);
    const expires = Date.parse(/; Expires=([^;]+)/.exec(cookie)![1]!);
    expect(Math.abs(expires - (started + 12 * 3600_000))).toBeLessThan(60_000);
  });

  it('a cookie-carried write from a page of another site is refused, same-site included; from our own page it is accepted', async () => {
    const { cookie, csrf } = await app.signIn();
    const own = { cookie, 'x-csrf-token': csrf };
    // The session's CSRF token is presented each time: only the origin decides here.
    for (const site of ['same-site', 'cross-site', 'none']) {
      const refused = await patch(app, { ...own, 'sec-fetch-site': site, origin: app.url });
      expect(refused.status, site).toBe(403);
      expect(await refused.json()).toMatchObject({ error: 'cross_site', message: 'Cross-site writes are refused.' });
    }
    expect((await patch(app, { ...own, origin: 'https://evil.example' })).status).toBe(403);
    expect((await patch(app, { ...own, origin: 'null' })).status).toBe(403);
    // Sec-Fetch-Site is what a browser says; Origin is only read when it does not say it.
    expect((await patch(app, { ...own, 'sec-fetch-site': 'same-origin', origin: 'null' })).status).toBe(200);
    expect((await patch(app, { ...own, 'sec-fetch-site': 'same-origin' })).status).toBe(200);
    expect((await patch(app, { ...own, origin: app.url })).status).toBe(200);
    // Neither header: not a browser, so not a page another site could have made send it.
    expect((await patch(app, own)).status).toBe(200);
    // A read is no write: the cookie alone reads, from anywhere (SameSite=Strict keeps it from
    // being sent by another site's page in the first place).
    for (const method of ['GET', 'HEAD', 'OPTIONS']) {
      expect(
        (await fetch(`${app.url}/api/flags`, { method, headers: { cookie, 'sec-fetch-site': 'cross-site' } })).status,
        method,
      ).toBe(200);
    }
  });

  it("a write carried by the cookie needs the session's own CSRF token", async () => {
    const { cookie, csrf } = await app.signIn();
    const other = await app.signIn();
    const site = { cookie, 'sec-fetch-site': 'same-origin' };
    for (const presented of [undefined, '', 'guessed', other.csrf, csrf.slice(0, -1), `${csrf}x`]) {
      const refused = await patch(app, presented === undefined ? site : { ...site, 'x-csrf-token': presented });
      expect(refused.status).toBe(403);
      expect(await refused.json()).toMatchObject({
        error: 'csrf',
        message: "This write needs the session's X-CSRF-Token.",
      });
    }
    expect((await patch(app, { ...site, 'x-csrf-token': csrf })).status).toBe(200);
  });

  it('sign-in from a page of another site is refused, same-site included', async () => {
    const foreign: Record<string, string>[] = [
      { 'sec-fetch-site': 'same-site', origin: app.url },
      { 'sec-fetch-site': 'cross-site' },
      { origin: 'https://evil.example' },
    ];
    for (const headers of foreign) {
      const refused = await form(app, '/admin/sign-in', headers, { token: TEST_TOKEN });
      expect(refused.status).toBe(403);
      expect(refused.headers.getSetCookie()).toEqual([]);
    }
    const own: Record<string, string>[] = [{ 'sec-fetch-site': 'same-origin' }, { origin: app.url }, {}];
    for (const headers of own) {
      const accepted = await form(app, '/admin/sign-in', headers, { token: TEST_TOKEN });
      expect(accepted.status).toBe(303);
      expect(accepted.headers.getSetCookie()[0]).toMatch(/^ks_admin=[A-Za-z0-9_-]{43};/);
    }
  });

  it('sign-in checks the token at once: a wrong, empty or missing one starts no session', async () => {
    const own = { 'sec-fetch-site': 'same-origin' };
    for (const [body, status, message] of [
      [{ token: 'ks_wrong-token' }, 401, 'The token was not accepted: it is wrong, or it was revoked.'],
      [{ token: '   ' }, 400, 'Paste a token to sign in.'],
      [{}, 400, 'Paste a token to sign in.'],
    ] as const) {
      const refused = await form(app, '/admin/sign-in', own, body);
      expect(refused.status).toBe(status);
      expect(refused.headers.get('cache-control')).toBe('no-store');
      expect(refused.headers.getSetCookie()).toEqual([]);
      const page = await refused.text();
      expect(page).toContain('id="sign-in-form"');
      expect(page).toContain(message);
    }
    // The token as pasted, with the blank around it a copy brings.
    expect((await form(app, '/admin/sign-in', own, { token: `  ${TEST_TOKEN}\n` })).status).toBe(303);
  });

  it("sign-out without the session's CSRF token is refused, and the session goes on", async () => {
    const { cookie, csrf } = await app.signIn();
    const other = await app.signIn();
    const bodies: Record<string, string>[] = [{}, { csrf: '' }, { csrf: 'guessed' }, { csrf: other.csrf }];
    for (const body of bodies) {
      const refused = await form(
        app,
        '/admin/sign-out',
        { cookie, origin: app.url, 'sec-fetch-site': 'same-origin' },
        body,
      );
      expect(refused.status).toBe(403);
      expect(refused.headers.getSetCookie()).toEqual([]);
      expect(await sessionWorks(app, cookie)).toBe(true);
    }
    // The same with a CSRF token sent as a header, where sign-out does not read it.
    expect(
      (await form(app, '/admin/sign-out', { cookie, 'x-csrf-token': csrf, 'sec-fetch-site': 'same-origin' }, {}))
        .status,
    ).toBe(403);
    expect(await sessionWorks(app, cookie)).toBe(true);
  });

  it('sign-out from a page of another site is refused, same-site included, and the session goes on', async () => {
    const { cookie, csrf } = await app.signIn();
    const foreign: Record<string, string>[] = [
      { 'sec-fetch-site': 'same-site', origin: app.url },
      { 'sec-fetch-site': 'cross-site' },
      { origin: 'https://evil.example' },
    ];
    for (const headers of foreign) {
      expect((await form(app, '/admin/sign-out', { cookie, ...headers }, { csrf })).status).toBe(403);
      expect(await sessionWorks(app, cookie)).toBe(true);
    }
    const out = await form(app, '/admin/sign-out', { cookie, 'sec-fetch-site': 'same-origin' }, { csrf });
    expect(out.status).toBe(303);
    expect(out.headers.get('location')).toBe('/admin');
    expect(out.headers.getSetCookie()[0]).toMatch(
      /^ks_admin=; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Strict$/,
    );
    expect(await sessionWorks(app, cookie)).toBe(false);
  });

  it('sign-out with no live session just clears the cookie', async () => {
    const cookies: Record<string, string>[] = [{}, { cookie: 'ks_admin=never-issued' }];
    for (const headers of cookies) {
      const out = await form(app, '/admin/sign-out', { ...headers, 'sec-fetch-site': 'cross-site' }, {});
      expect(out.status).toBe(303);
      expect(out.headers.getSetCookie()[0]).toMatch(/^ks_admin=;/);
    }
  });

  it('an ended or unknown session reads nothing, and says how to sign in again', async () => {
    for (const cookie of ['ks_admin=never-issued', 'ks_admin=', 'other=1; ks_admin=x']) {
      const refused = await get(app, '/api/flags', { cookie });
      expect(refused.status).toBe(401);
      expect((await refused.json()).message).toMatch(/admin session has ended.*sign in again at \/admin/);
    }
    // Another cookie is no credential at all.
    const none = await get(app, '/api/flags', { cookie: 'theme=dark' });
    expect(none.status).toBe(401);
    expect((await none.json()).message).toMatch(/Authorization: Bearer/);
  });

  it('an admin socket whose token is not text is one without a token: the session decides, and nothing is counted', async () => {
    const { cookie } = await app.signIn();
    for (const token of [42, { digest: 'x' }, ['ks_x'], null]) {
      expect(await adminSocket(app, { token, headers: { cookie, 'sec-fetch-site': 'same-origin' } })).toBe('connected');
      expect(await adminSocket(app, { token })).toEqual({
        refused: 'The admin events need a token (auth: { role: "admin", token }) or a signed-in admin page.',
      });
    }
  });

  it('the admin socket takes the session from our own page only, same-site refused', async () => {
    const { cookie } = await app.signIn();
    const host = new URL(app.url).host;
    expect(await adminSocket(app, { headers: { cookie, 'sec-fetch-site': 'same-origin' } })).toBe('connected');
    expect(await adminSocket(app, { headers: { cookie, origin: app.url } })).toBe('connected');
    // Behind a TLS proxy the page's origin is https on the same host.
    expect(await adminSocket(app, { headers: { cookie, origin: `https://${host}` } })).toBe('connected');
    expect(await adminSocket(app, { headers: { cookie } })).toBe('connected');
    const foreign: Record<string, string>[] = [
      { 'sec-fetch-site': 'same-site', origin: app.url },
      { 'sec-fetch-site': 'cross-site' },
      { origin: 'https://evil.example' },
      { origin: `ftp://${host}` },
    ];
    for (const headers of foreign) {
      expect(await adminSocket(app, { headers: { cookie, ...headers } })).toEqual({
        refused: expect.stringMatching(/signed-in admin page/),
      });
    }
    expect(await adminSocket(app, { headers: { cookie: 'ks_admin=never-issued' } })).toEqual({
      refused: expect.stringMatching(/signed-in admin page/),
    });
  });

  it("a token revoked, then its name given to a new token: the old token's session stays over", async () => {
    const first = await createToken(app, 'ci-bot');
    const { cookie } = await app.signIn(first);
    expect(await sessionWorks(app, cookie)).toBe(true);
    expect(await adminSocket(app, { headers: { cookie, 'sec-fetch-site': 'same-origin' } })).toBe('connected');

    await tokenCommand(app, 'revoke', 'ci-bot');
    await waitFor(async () => (await get(app, '/api/flags', bearer(first))).status === 401, 10_000, 'the revocation');
    expect(await sessionWorks(app, cookie)).toBe(false);

    const second = await createToken(app, 'ci-bot');
    expect((await get(app, '/api/flags', bearer(first))).status).toBe(401);
    const refused = await get(app, '/api/flags', { cookie });
    expect(refused.status).toBe(401);
    expect(await sessionWorks(app, cookie)).toBe(false);
    expect(await adminSocket(app, { headers: { cookie, 'sec-fetch-site': 'same-origin' } })).toEqual({
      refused: expect.any(String),
    });
    // The new token signs in as itself.
    expect(await sessionWorks(app, (await app.signIn(second)).cookie)).toBe(true);
  });

  it('revoking a token closes at once the admin sockets it opened, by the token itself or by its session; no other', async () => {
    const token = await createToken(app, 'on-call');
    const { cookie } = await app.signIn(token);
    const byToken = await openAdminSocket(app, { token });
    const bySession = await openAdminSocket(app, { headers: { cookie, 'sec-fetch-site': 'same-origin' } });
    const other = await openAdminSocket(app, { token: TEST_TOKEN });
    const denied = [byToken, bySession].map((socket) => record(socket, 'admin_denied'));
    try {
      await tokenCommand(app, 'revoke', 'on-call');
      await waitFor(() => !byToken.connected && !bySession.connected, 10_000, 'both sockets closed');
      for (const events of denied)
        expect(events.map((event) => event.message)).toEqual([
          'The token "on-call" was revoked: the admin channel is closed.',
        ]);
      // Everything sent so far has reached the other socket (a close would have come first): it is open.
      await app.delivered([other]);
      expect(other.connected).toBe(true);
    } finally {
      for (const socket of [byToken, bySession, other]) socket.close();
    }
  });

  it('a bearer token is read as RFC 6750 says: the scheme in any case, one token, blanks around it', async () => {
    for (const authorization of [
      `Bearer ${TEST_TOKEN}`,
      `bearer ${TEST_TOKEN}`,
      `BEARER  ${TEST_TOKEN}  `,
      `Bearer\t${TEST_TOKEN}`,
    ]) {
      expect((await get(app, '/api/flags', { authorization })).status, authorization).toBe(200);
    }
    for (const authorization of [
      `Bearer ${TEST_TOKEN} extra`,
      `Bearer`,
      `Token ${TEST_TOKEN}`,
      `xBearer ${TEST_TOKEN}`,
      TEST_TOKEN,
    ]) {
      const refused = await get(app, '/api/flags', { authorization });
      expect(refused.status, authorization).toBe(401);
      // Not a bearer token at all: asked for one.
      expect((await refused.json()).message, authorization).toMatch(/send "Authorization: Bearer <token>"/);
    }
    const wrong = await get(app, '/api/flags', { authorization: `Bearer ${TEST_TOKEN}x` });
    expect(wrong.status).toBe(401);
    expect((await wrong.json()).message).toBe('The token was not accepted: it is wrong, or it was revoked.');
  });

  it('a bearer token wins over a session cookie, and writes without CSRF or origin checks (it is no ambient credential)', async () => {
    const reader = await createToken(app, 'dashboards', '--read-only');
    const { cookie } = await app.signIn();
    const refused = await patch(app, { ...bearer(reader), cookie, 'sec-fetch-site': 'cross-site' });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({
      error: 'read_only_token',
      message: expect.stringContaining('"dashboards" is read-only'),
    });
    expect((await patch(app, { ...bearer(TEST_TOKEN), 'sec-fetch-site': 'cross-site' })).status).toBe(200);
    // A read-only session cannot write either, its CSRF token and origin right.
    const session = await app.signIn(reader);
    const readOnly = await patch(app, {
      cookie: session.cookie,
      'x-csrf-token': session.csrf,
      'sec-fetch-site': 'same-origin',
    });
    expect(readOnly.status).toBe(403);
    expect((await readOnly.json()).error).toBe('read_only_token');
    expect(await adminSocket(app, { token: reader })).toBe('connected');
  });
});

describe('failed authentications, counted per address', { timeout: 60_000 }, () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ AUTH_FAILURES_PER_15_MIN: '3' });
  });
  afterAll(() => app.stop());

  it('counts a refused token, by header, form or socket; not a missing one, nor an ended session; past the limit, refuses everything', async () => {
    // Not attempts: no credential, an ended session, an empty socket token... of any number.
    for (let i = 0; i < 4; i++) {
      expect((await get(app, '/api/flags')).status).toBe(401);
      expect((await get(app, '/api/flags', { cookie: 'ks_admin=ended' })).status).toBe(401);
      expect(await adminSocket(app)).toEqual({ refused: expect.stringMatching(/need a token/) });
    }
    expect((await get(app, '/api/flags', bearer(TEST_TOKEN))).status).toBe(200);
    // Three attempts, one each way: the third reaches the limit.
    expect((await get(app, '/api/flags', bearer('ks_guess'))).status).toBe(401);
    expect(await adminSocket(app, { token: 'ks_guess' })).toEqual({
      refused: 'The token was not accepted: it is wrong, or it was revoked.',
    });
    expect((await form(app, '/admin/sign-in', { 'sec-fetch-site': 'same-origin' }, { token: 'ks_guess' })).status).toBe(
      401,
    );

    const blocked = await get(app, '/api/flags', bearer(TEST_TOKEN));
    expect(blocked.status).toBe(429);
    const retryAfter = Number(blocked.headers.get('retry-after'));
    // The window is 15 minutes from the first attempt.
    expect(retryAfter).toBeGreaterThan(14 * 60);
    expect(retryAfter).toBeLessThanOrEqual(15 * 60);
    expect((await blocked.json()).message).toBe(
      `Too many failed authentications from this address. Try again in ${retryAfter} s.`,
    );
    const signIn = await form(app, '/admin/sign-in', { 'sec-fetch-site': 'same-origin' }, { token: TEST_TOKEN });
    expect(signIn.status).toBe(429);
    expect(Number(signIn.headers.get('retry-after'))).toBeGreaterThan(14 * 60);
    expect(await signIn.text()).toMatch(/Too many failed authentications from this address. Try again in \d+ s\./);
    expect(await adminSocket(app, { token: TEST_TOKEN })).toEqual({
      refused: expect.stringMatching(/^Too many failed authentications from this address. Try again in \d+ s\.$/),
    });
    // The feed is not behind it.
    expect((await get(app, '/?user=maya')).status).toBe(200);
    // Nor is another address: the count is this one's.
    expect(await getFrom(app, '127.0.0.2', '/api/flags', bearer(TEST_TOKEN))).toBe(200);
  });
});

/** A GET from another loopback address (Linux answers on all of 127/8): its status. */
function getFrom(
  app: TestApp,
  localAddress: string,
  pathname: string,
  headers: Record<string, string>,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${app.url}${pathname}`, { localAddress, headers }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode!));
    });
    req.once('error', reject);
    req.end();
  });
}
