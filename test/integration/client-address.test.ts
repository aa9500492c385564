import { io as connect, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { adminSocket, bearer, get, openAdminSocket } from '../helpers/access.js';
import { capturingLogger, startTestApp, TEST_TOKEN, waitFor, type TestApp } from '../helpers/app.js';

/** A feed page's socket with these headers: resolves once it has its snapshot (counted among the browsers), or to why it was refused. */
function pageSocket(app: TestApp, headers: Record<string, string> = {}) {
  const socket = connect(app.url, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    extraHeaders: headers,
  });
  return new Promise<{ socket: Socket } | { refused: string; reason: unknown }>((resolve) => {
    socket.once('flag_snapshot', () => resolve({ socket }));
    socket.once('connect_error', (error: Error & { data?: { reason?: unknown } }) => {
      socket.close();
      resolve({ refused: error.message, reason: error.data?.reason });
    });
  });
}

async function openPageSocket(app: TestApp, headers: Record<string, string> = {}): Promise<Socket> {
  const opened = await pageSocket(app, headers);
  if ('refused' in opened) throw new Error(`the page's socket was refused: ${opened.refused}`);
  return opened.socket;
}

const TOO_MANY = (cap: number) => ({
  refused: `Too many connections from this address (${cap} at most): close some tabs, or try again later.`,
  reason: 'too_many_connections',
});
const from = (address: string) => ({ 'x-forwarded-for': address });

/** "Browsers watching" as the launch-control page shows it. */
async function browsersOnAdmin(app: TestApp, cookie: string): Promise<number> {
  const page = await (await get(app, '/admin', { cookie })).text();
  return Number(/id="browsers">(\d+)</.exec(page)?.[1]);
}

const signInCookie = async (app: TestApp, headers: Record<string, string>) => {
  const response = await fetch(`${app.url}/admin/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: app.url, ...headers },
    body: new URLSearchParams({ token: TEST_TOKEN }),
    redirect: 'manual',
  });
  expect(response.status).toBe(303);
  return response.headers.getSetCookie()[0]!;
};

describe('sockets per address', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ MAX_SOCKETS_PER_ADDRESS: '3' });
  });
  afterAll(() => app.stop());

  it('a cap of 3: three connect, the fourth is refused with the reason and not counted; closing one lets another in', async () => {
    const { cookie } = await app.signIn();
    const open = [await openPageSocket(app), await openPageSocket(app), await openPageSocket(app)];
    expect(await pageSocket(app)).toEqual(TOO_MANY(3));
    // An admin page's socket is a connection like any other.
    expect(await adminSocket(app, { token: TEST_TOKEN })).toEqual({ refused: TOO_MANY(3).refused });
    expect(await browsersOnAdmin(app, cookie)).toBe(3);

    open.shift()!.close();
    await waitFor(async () => (await browsersOnAdmin(app, cookie)) === 2, 5000, 'the closed socket to leave');
    open.push(await openPageSocket(app));
    expect(await browsersOnAdmin(app, cookie)).toBe(3);
    expect(await pageSocket(app)).toEqual(TOO_MANY(3));
    for (const socket of open) socket.close();
  });
});

describe('TRUST_PROXY=loopback: behind a proxy on this machine, each forwarded client is an address of its own', () => {
  let app: TestApp;
  const log = capturingLogger('warn');
  beforeAll(async () => {
    app = await startTestApp(
      {
        TRUST_PROXY: 'loopback',
        AUTH_FAILURES_PER_15_MIN: '2',
        MAX_SOCKETS_PER_ADDRESS: '2',
        API_RATE_LIMIT_PER_MIN: '2',
        SIGN_INS_PER_15_MIN: '2',
        LOG_LEVEL: 'warn',
      },
      { logger: log.logger },
    );
  });
  afterAll(() => app.stop());

  it("failed authentications count per client, over HTTP and the admin socket's handshake alike", async () => {
    for (let i = 0; i < 2; i++)
      expect((await get(app, '/api/flags', { ...bearer('ks_wrong'), ...from('203.0.113.1') })).status).toBe(401);
    expect((await get(app, '/api/flags', { ...bearer(TEST_TOKEN), ...from('203.0.113.1') })).status).toBe(429);
    expect(await adminSocket(app, { token: TEST_TOKEN, headers: from('203.0.113.1') })).toEqual({
      refused: expect.stringMatching(/Too many failed/),
    });

    // Another client behind the same proxy: not blocked, on either.
    expect((await get(app, '/api/flags', { ...bearer(TEST_TOKEN), ...from('203.0.113.2') })).status).toBe(200);
    (await openAdminSocket(app, { token: TEST_TOKEN, headers: from('203.0.113.2') })).close();

    // Wrong tokens at the socket's handshake count against the address HTTP sees for that client.
    for (let i = 0; i < 2; i++)
      expect(await adminSocket(app, { token: 'ks_wrong', headers: from('203.0.113.3') })).toEqual({
        refused: expect.stringMatching(/not accepted/),
      });
    expect((await get(app, '/api/flags', { ...bearer(TEST_TOKEN), ...from('203.0.113.3') })).status).toBe(429);
  });

  it('the socket cap counts per client', async () => {
    const open = [await openPageSocket(app, from('203.0.113.10')), await openPageSocket(app, from('203.0.113.10'))];
    expect(await pageSocket(app, from('203.0.113.10'))).toEqual(TOO_MANY(2));
    open.push(await openPageSocket(app, from('203.0.113.11')));
    for (const socket of open) socket.close();
  });

  it('the write limit counts per client, and the audit names the client; nothing to warn of', async () => {
    const write = (address: string, value: boolean) =>
      app.patchFlag(KILL_SWITCH, { variants: { probe: value } }, from(address));
    expect((await write('203.0.113.20', true)).status).toBe(200);
    expect((await write('203.0.113.20', false)).status).toBe(200);
    expect((await write('203.0.113.20', true)).status).toBe(429);
    expect((await write('203.0.113.21', true)).status).toBe(200);
    expect((await app.request('/api/audit?limit=1')).body.entries[0].actor.address).toBe('203.0.113.21');
    expect(log.lines.filter((line) => /trust_proxy|forwarded_for/.test(line))).toEqual([]);
  });

  it('an IPv6 client is one client per /56 in every limit: a new address in the same block changes nothing', async () => {
    // One customer's /56 (2001:db8:5:100::/56 holds 2001:db8:5:100:: to 2001:db8:5:1ff:ffff:...).
    const inBlock = (prefix: string, i: number) => from(`${prefix}:${(0x100 + i * 0x3f).toString(16)}::${i + 1}`);
    const nextBlock = (prefix: string) => from(`${prefix}:200::1`);

    // Failed authentications: two wrong tokens from two addresses, then the right one from a third.
    for (let i = 0; i < 2; i++)
      expect((await get(app, '/api/flags', { ...bearer('ks_wrong'), ...inBlock('2001:db8:5', i) })).status).toBe(401);
    expect((await get(app, '/api/flags', { ...bearer(TEST_TOKEN), ...inBlock('2001:db8:5', 2) })).status).toBe(429);
    expect((await get(app, '/api/flags', { ...bearer(TEST_TOKEN), ...nextBlock('2001:db8:5') })).status).toBe(200);

    // Sockets.
    const open = [
      await openPageSocket(app, inBlock('2001:db8:6', 0)),
      await openPageSocket(app, inBlock('2001:db8:6', 1)),
    ];
    expect(await pageSocket(app, inBlock('2001:db8:6', 2))).toEqual(TOO_MANY(2));
    open.push(await openPageSocket(app, nextBlock('2001:db8:6')));
    for (const socket of open) socket.close();

    // Sign-ins.
    const signIn = (headers: Record<string, string>) =>
      fetch(`${app.url}/admin/sign-in`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: app.url, ...headers },
        body: new URLSearchParams({ token: TEST_TOKEN }),
        redirect: 'manual',
      });
    for (let i = 0; i < 2; i++) expect((await signIn(inBlock('2001:db8:7', i))).status).toBe(303);
    expect((await signIn(inBlock('2001:db8:7', 2))).status).toBe(429);
    expect((await signIn(nextBlock('2001:db8:7'))).status).toBe(303);
  });

  it('the session cookie is Secure behind TLS (X-Forwarded-Proto: https), and only then', async () => {
    // Behind TLS the page's own origin is the https one.
    const tls = { 'x-forwarded-proto': 'https', origin: app.url.replace(/^http:/, 'https:'), ...from('203.0.113.30') };
    expect(await signInCookie(app, tls)).toMatch(/; Secure/i);
    expect(await signInCookie(app, from('203.0.113.30'))).not.toMatch(/; Secure/i);
  });
});

describe('TRUST_PROXY unset: X-Forwarded-For and X-Forwarded-Proto are ignored', () => {
  let app: TestApp;
  const log = capturingLogger('warn');
  beforeAll(async () => {
    app = await startTestApp(
      { AUTH_FAILURES_PER_15_MIN: '2', MAX_SOCKETS_PER_ADDRESS: '2', LOG_LEVEL: 'warn' },
      { logger: log.logger },
    );
  });
  afterAll(() => app.stop());

  it('a client naming other addresses is still one address: one socket cap, one failure count, and no Secure cookie over plain HTTP', async () => {
    expect(await signInCookie(app, { 'x-forwarded-proto': 'https', ...from('203.0.113.1') })).not.toMatch(/; Secure/i);

    const open = [await openPageSocket(app, from('203.0.113.10')), await openPageSocket(app, from('203.0.113.11'))];
    expect(await pageSocket(app, from('203.0.113.12'))).toEqual(TOO_MANY(2));
    for (const socket of open) socket.close();

    expect((await get(app, '/api/flags', { ...bearer('ks_wrong'), ...from('203.0.113.1') })).status).toBe(401);
    expect((await get(app, '/api/flags', { ...bearer('ks_wrong'), ...from('203.0.113.2') })).status).toBe(401);
    expect((await get(app, '/api/flags', { ...bearer(TEST_TOKEN), ...from('203.0.113.3') })).status).toBe(429);
  });

  it('a request carrying X-Forwarded-For: a warning that TRUST_PROXY is unset, said once', async () => {
    await app.patchFlag(KILL_SWITCH, { variants: { probe: true } }, from('203.0.113.4'));
    await get(app, '/api/flags', { ...bearer(TEST_TOKEN), ...from('203.0.113.5') });
    const warnings = log.lines.filter((line) => line.includes('untrusted_forwarded_for'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/TRUST_PROXY is unset/);
  });
});

describe('TRUST_PROXY=true', () => {
  it('is warned of at start: it believes any X-Forwarded-For, so every limit per address can be escaped', async () => {
    const log = capturingLogger('warn');
    const app = await startTestApp({ TRUST_PROXY: 'true', LOG_LEVEL: 'warn' }, { logger: log.logger });
    try {
      expect(log.lines.filter((line) => line.includes('permissive_trust_proxy'))).toHaveLength(1);
      await get(app, '/api/flags', { ...bearer(TEST_TOKEN), ...from('203.0.113.6') });
      expect(log.lines.some((line) => line.includes('untrusted_forwarded_for'))).toBe(false);
    } finally {
      await app.stop();
    }
  });
});
