import { once } from 'node:events';
import type { RedisOptions } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createAuthFailures,
  createSignInLimit,
  csrfMatches,
  fromOwnOrigin,
  sessionIdFrom,
} from '../../server/access/auth.js';
import { SESSION_COOKIE, type Session } from '../../server/access/sessions.js';
import { digestOf } from '../../server/access/tokens.js';
import { TestRedis } from '../../testing/redis.js';

const OWN = 'http://127.0.0.1:8080';

describe('whether a request comes from a page of our own origin', () => {
  it.each([
    // Sec-Fetch-Site, when a browser sends it, decides: only same-origin is ours.
    [{ 'sec-fetch-site': 'same-origin' }, true],
    [{ 'sec-fetch-site': 'same-origin', origin: 'https://evil.example' }, true],
    [{ 'sec-fetch-site': 'same-origin', origin: 'null' }, true],
    [{ 'sec-fetch-site': 'same-site', origin: OWN }, false],
    [{ 'sec-fetch-site': 'cross-site', origin: OWN }, false],
    [{ 'sec-fetch-site': 'none', origin: OWN }, false],
    [{ 'sec-fetch-site': '', origin: OWN }, false],
    // Without it, the Origin: ours, or none at all (not a browser).
    [{ origin: OWN }, true],
    [{}, true],
    [{ origin: 'null' }, false],
    [{ origin: 'https://127.0.0.1:8080' }, false],
    [{ origin: `${OWN}0` }, false],
    [{ origin: `${OWN}/` }, false],
  ])('%j: %s', (headers, expected) => {
    expect(fromOwnOrigin(headers, OWN)).toBe(expected);
  });
});

describe('the session cookie and its CSRF token', () => {
  it('finds the session id among the cookies, and nothing without it', () => {
    expect(sessionIdFrom({ cookie: `theme=dark; ${SESSION_COOKIE}=abc_-123; other=1` })).toBe('abc_-123');
    expect(sessionIdFrom({ cookie: 'theme=dark' })).toBeUndefined();
    expect(sessionIdFrom({ cookie: '' })).toBeUndefined();
    expect(sessionIdFrom({})).toBeUndefined();
  });

  it("matches the session's CSRF token exactly, and nothing when either is empty", () => {
    const session: Session = {
      principal: { name: 'admin', scope: 'full', digest: digestOf('x') },
      csrf: 'the-csrf-token-of-this-session',
      expiresAt: 0,
    };
    expect(csrfMatches(session, 'the-csrf-token-of-this-session')).toBe(true);
    for (const presented of [
      undefined,
      '',
      'the-csrf-token-of-this-sessio',
      'the-csrf-token-of-this-session ',
      'THE-CSRF-TOKEN-OF-THIS-SESSION',
      'ünïcode',
    ]) {
      expect(csrfMatches(session, presented)).toBe(false);
    }
    // A kept session whose token is empty (written by something else) matches no request, an empty token included.
    expect(csrfMatches({ ...session, csrf: '' }, '')).toBe(false);
  });
});

describe('failed authentications, counted per address', () => {
  it('blocks an address at the limit, for the rest of the window, and no other address', async () => {
    const failures = createAuthFailures({ limit: 3, windowSeconds: 600 });
    expect(await failures.blockedFor('10.0.0.1')).toBe(0);
    const started = performance.now();
    await failures.failed('10.0.0.1');
    await failures.failed('10.0.0.1');
    expect(await failures.blockedFor('10.0.0.1')).toBe(0);
    await failures.failed('10.0.0.1');
    // Whole seconds, rounded up: the window began with the first failure, `elapsed` ago at most
    // (600 when that is under a second).
    const wait = await failures.blockedFor('10.0.0.1');
    const elapsed = performance.now() - started;
    expect(wait).toBeGreaterThanOrEqual(600 - Math.floor(elapsed / 1000));
    expect(wait).toBeLessThanOrEqual(600);
    // More failures past the limit change nothing, and never throw.
    await failures.failed('10.0.0.1');
    expect(await failures.blockedFor('10.0.0.1')).toBeGreaterThan(590);
    expect(await failures.blockedFor('10.0.0.2')).toBe(0);
  });

  it('rounds the wait up to a whole second, never 0 while blocked', async () => {
    const failures = createAuthFailures({ limit: 1, windowSeconds: 1 });
    await failures.failed('10.0.0.1');
    const wait = await failures.blockedFor('10.0.0.1');
    expect(wait).toBe(1);
  });

  describe('with Redis', () => {
    let server: TestRedis;
    const client = (options: RedisOptions = {}) => server.client(options);
    beforeAll(async () => {
      server = await TestRedis.create({ persist: false });
    });
    afterAll(() => server.destroy());

    it('is shared by every instance: failures on one block the address on the other', async () => {
      const [a, b] = [
        createAuthFailures({ limit: 2, windowSeconds: 900, redis: client() }),
        createAuthFailures({ limit: 2, windowSeconds: 900, redis: client() }),
      ];
      await a.failed('10.0.0.9');
      expect(await b.blockedFor('10.0.0.9')).toBe(0);
      await b.failed('10.0.0.9');
      expect(await a.blockedFor('10.0.0.9')).toBeGreaterThan(890);
      expect(await b.blockedFor('10.0.0.9')).toBeGreaterThan(890);
      expect(await client().keys('*')).toEqual(['killswitch:auth-failures:10.0.0.9']);
    });

    it('counts in memory while Redis is away', async () => {
      // As the app's access connection: commands fail at once while Redis is away.
      const redis = client({ enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
      if (redis.status !== 'ready') await once(redis, 'ready');
      const failures = createAuthFailures({ limit: 2, windowSeconds: 900, redis });
      await server.stop();
      try {
        await failures.failed('10.0.0.7');
        await failures.failed('10.0.0.7');
        expect(await failures.blockedFor('10.0.0.7')).toBeGreaterThan(890);
        expect(await failures.blockedFor('10.0.0.8')).toBe(0);
      } finally {
        await server.start();
      }
    });
  });
});

describe('successful sign-ins, counted per address', () => {
  it('lets an address sign in up to the limit, then says how long to wait; another address is not held', async () => {
    const signIns = createSignInLimit({ limit: 2, windowSeconds: 600 });
    expect(await signIns.take('10.0.1.1')).toBe(0);
    expect(await signIns.take('10.0.1.1')).toBe(0);
    const wait = await signIns.take('10.0.1.1');
    expect(wait).toBeGreaterThan(590);
    expect(wait).toBeLessThanOrEqual(600);
    expect(await signIns.take('10.0.1.2')).toBe(0);
  });

  it('is shared by every instance through Redis', async () => {
    const server = await TestRedis.create({ persist: false });
    try {
      const [a, b] = [
        createSignInLimit({ limit: 2, windowSeconds: 600, redis: server.client() }),
        createSignInLimit({ limit: 2, windowSeconds: 600, redis: server.client() }),
      ];
      expect(await a.take('10.0.1.3')).toBe(0);
      expect(await b.take('10.0.1.3')).toBe(0);
      expect(await a.take('10.0.1.3')).toBeGreaterThan(590);
      expect(await server.client().keys('*')).toEqual(['killswitch:sign-ins:10.0.1.3']);
    } finally {
      await server.destroy();
    }
  });
});
