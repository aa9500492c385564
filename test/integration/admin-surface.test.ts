import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { capturingLogger, startTestApp, TEST_TOKEN, waitFor, type TestApp } from '../helpers/app.js';

describe('junk never gets a 5xx', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ API_RATE_LIMIT_PER_MIN: '1000000' });
  });
  afterAll(() => app.stop());

  const contentType = fc.constantFrom(
    'application/json',
    'application/merge-patch+json',
    'application/json; charset=utf-8',
    'application/json; charset=latin1',
    'text/plain',
    'application/x-www-form-urlencoded',
    '',
    'application/json; charset=nope',
  );
  const body = fc.oneof(
    fc.json().map((json) => json),
    fc.string(),
    fc.jsonValue().map((value) => JSON.stringify(value)),
    fc.constantFrom(
      '{"__proto__": {"admin": true}}',
      '{"constructor": {"prototype": {"x": 1}}}',
      '{"variants": {"__proto__": {"on": true}}}',
      '{"state":',
      '\u0000\u0001',
      '{"targeting": {"var": [[[[[[[[[[]]]]]]]]]]}}',
      '[]',
      'null',
      '1e999',
      '{"state":"DISABLED"}'.repeat(2000),
    ),
    fc
      .record(
        {
          state: fc.string(),
          defaultVariant: fc.string(),
          variants: fc.dictionary(fc.string(), fc.jsonValue()),
          targeting: fc.jsonValue(),
        },
        { requiredKeys: [] },
      )
      .map((v) => JSON.stringify(v)),
  );
  const key = fc.oneof(
    fc.constant(KILL_SWITCH),
    fc.string(),
    fc.constantFrom('..', '%00', '%E0%A4%A', 'a'.repeat(5000), 'show-avatars-and-reccs%2F..'),
  );
  const header = fc.oneof(
    fc.constant(undefined),
    fc.string(),
    fc.constantFrom('"1"', 'W/"2"', '*', '"-1"', '"99999999999999999999"'),
  );

  it('answers a few hundred random junk PATCH requests with a 4xx (or a 200) and a message, never a 5xx', async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(
        key,
        contentType,
        body,
        header,
        fc.boolean(),
        async (flag, type, payload, ifMatch, authorized) => {
          const headers: Record<string, string> = {};
          if (type) headers['content-type'] = type;
          if (ifMatch !== undefined) headers['if-match'] = ifMatch.replace(/[^\t\x20-\x7e]/g, '');
          if (authorized) headers.authorization = `Bearer ${TEST_TOKEN}`;
          let path = `/api/flags/${flag}`;
          try {
            new URL(path, app.url);
          } catch {
            path = `/api/flags/${encodeURIComponent(flag)}`;
          }
          const res = await fetch(app.url + path, { method: 'PATCH', headers, body: payload });
          const text = await res.text();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          expect(res.status, `${path} ${type} ${payload.slice(0, 200)} -> ${text.slice(0, 200)}`).toBeLessThan(500);
          if (res.status >= 400) expect(JSON.parse(text).message).toMatch(/\w/);
        },
      ),
      { numRuns: 400 },
    );
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
    // Whatever was accepted, the kill switch is still a valid boolean flag.
    const { body: flag } = await app.request(`/api/flags/${KILL_SWITCH}`);
    expect(typeof flag.definition.variants[flag.definition.defaultVariant]).toBe('boolean');
    console.log(`fuzz: 400 junk requests, statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  });

  it('limits bodies to 16 KB (413) and checks the content type (415)', async () => {
    const big = await app.patchFlag(KILL_SWITCH, JSON.stringify({ variants: { x: true }, pad: 'x'.repeat(20_000) }));
    expect(big.status).toBe(413);
    expect(big.body.message).toMatch(/too large/);
    const text = await app.patchFlag(KILL_SWITCH, '{"state":"ENABLED"}', { 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
  });

  it('escapes what a caller writes into the audit when the page renders it', async () => {
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' }, { 'x-actor': '<img src=x onerror=alert(1)>' });
    await app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
    const page = await app.request('/admin', { headers: { cookie: (await app.signIn()).cookie } });
    expect(page.text).not.toContain('<img src=x');
    expect(page.text).toContain('\\u003cimg src=x');
  });

  it('cuts a socket that sends more than the tiny payload browsers need', async () => {
    const socket = await app.socket({ cookie: 'viewer=maya' });
    const reasons: string[] = [];
    socket.on('disconnect', (reason) => reasons.push(reason));
    socket.io.opts.reconnection = false;
    socket.emit('anything', 'x'.repeat(10_000));
    await waitFor(() => reasons.length > 0, 3000, 'the disconnect');
    expect(reasons[0]).toBe('transport close');
  });
});

describe('the admin token', () => {
  it('is never written to the logs, whether right or wrong, nor is the session or its CSRF token', async () => {
    const { logger, lines } = capturingLogger('debug');
    const app = await startTestApp({ LOG_LEVEL: 'debug' }, { logger });
    try {
      await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
      await app.patchFlag(
        KILL_SWITCH,
        { state: 'ENABLED' },
        { authorization: 'Bearer wrong-token-that-is-long-enough' },
      );
      await app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
      const { cookie, csrf } = await app.signIn();
      expect(
        (await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' }, { authorization: '', cookie, 'x-csrf-token': csrf }))
          .status,
      ).toBe(200);
      const log = lines.join('');
      expect(log).toContain('PATCH');
      expect(log).toContain('/admin/sign-in');
      expect(log).not.toContain(TEST_TOKEN);
      expect(log).not.toContain('wrong-token-that-is-long-enough');
      expect(log).not.toContain(cookie.split('=')[1]);
      expect(log).not.toContain(csrf);
      expect(log).toContain('[redacted]');
    } finally {
      await app.stop();
    }
  });
});

describe('the request log', () => {
  it('writes a line per request once it is answered, at the level its status says; probes and files left out', async () => {
    const { logger, lines } = capturingLogger('info');
    const app = await startTestApp({ LOG_LEVEL: 'info' }, { logger });
    try {
      const written = lines.length;
      expect((await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' })).status).toBe(200);
      expect((await app.request('/api/flags/no-such-flag')).status).toBe(404);
      await app.request('/healthz');
      await app.request('/static/css/app.css');
      const requests = lines
        .slice(written)
        .map((line) => JSON.parse(line) as Record<string, any>)
        .filter((entry) => entry.req);
      expect(requests).toHaveLength(2);
      const [patch, missing] = requests;
      expect(patch).toMatchObject({
        level: 30,
        msg: 'request completed',
        req: { method: 'PATCH', url: `/api/flags/${KILL_SWITCH}`, headers: { authorization: '[redacted]' } },
        res: { statusCode: 200 },
      });
      expect(patch!.responseTime).toBeTypeOf('number');
      expect(missing).toMatchObject({
        level: 40,
        req: { method: 'GET', url: '/api/flags/no-such-flag' },
        res: { statusCode: 404 },
      });
      expect(missing!.req.id).toBeGreaterThan(patch!.req.id);
    } finally {
      await app.stop();
    }
  });
});

describe('graceful shutdown', () => {
  it('drains a request in flight, while new connections are refused and browsers are told to go', async () => {
    const app = await startTestApp({ UPSTREAM_TIMEOUT_MS: '600' });
    app.simulator!.setKnobs({ mode: 'hang' });
    const socket = io(app.url, { transports: ['websocket'], reconnection: false });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const reasons: string[] = [];
    socket.on('disconnect', (reason) => reasons.push(reason));

    const inFlight = fetch(`${app.url}/?user=draining`); // waits ~600 ms on the hanging third party
    await waitFor(() => app.simulator!.stats().inFlight > 0, 3000, 'the request to reach the third party');
    const closing = app.stop();
    expect(app.isReady()).toBe(false);
    await expect(fetch(`${app.url}/healthz`)).rejects.toThrow();
    const response = await inFlight;
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('data-source="fallback"');
    await closing;
    expect(reasons).toEqual(['transport close']);
  });

  it('ends a connection that never finishes its request once SHUTDOWN_GRACE_MS is over', async () => {
    const grace = 300;
    const app = await startTestApp({ SHUTDOWN_GRACE_MS: String(grace) });
    // A client that sends half a request and stalls: the connection is busy, never idle.
    const accepted = once(app.realtime.io.httpServer, 'connection') as Promise<[Socket]>;
    const { port } = new URL(app.url);
    const stalled = connect(Number(port), '127.0.0.1');
    // Listened to from the start, and never a promise that rejects while the shutdown is awaited.
    const errors: Error[] = [];
    stalled.on('error', (error) => errors.push(error));
    const cut = new Promise<void>((resolve) => stalled.once('close', () => resolve()));
    await once(stalled, 'connect');
    const head = 'GET /?user=stalled HTTP/1.1\r\nHost: localhost\r\n';
    stalled.write(head);
    // Busy only once the server has read those bytes: a connection it has read nothing from is
    // idle, and Node 26 closes it at once (with the bytes unread, the kernel sends a reset).
    const [serverSide] = await accepted;
    await waitFor(() => serverSide.bytesRead === Buffer.byteLength(head), 3000, 'the server to read the half request');
    const started = performance.now();
    await app.stop();
    await cut;
    const took = performance.now() - started;
    // Ended, not reset: the server had read everything the client sent.
    expect(errors).toEqual([]);
    // Cut at the end of the grace period: not before it (it had its chance), and not much after.
    expect(took).toBeGreaterThanOrEqual(grace - 50);
    expect(took).toBeLessThan(grace + 2000);
  });
});
