import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createMemorySessionStore, createRedisSessionStore, type SessionStore } from '../../server/access/sessions.js';
import { digestOf, type Principal } from '../../server/access/tokens.js';
import { TestRedis } from '../../testing/redis.js';

// The lifetime the admin page promises, written out here: importing the server's constant would
// let a shorter one pass.
const TWELVE_HOURS = 12 * 60 * 60 * 1000;
const T0 = Date.parse('2026-12-07T08:00:00Z');

const writer: Principal = { name: 'ci-bot', scope: 'full', digest: digestOf('ks_writer') };
const reader: Principal = { name: 'dashboards', scope: 'read-only', digest: digestOf('ks_reader') };

let redisServer: TestRedis;
let redis: Redis;
beforeAll(async () => {
  redisServer = await TestRedis.create({ persist: false });
  redis = redisServer.client();
});
afterAll(async () => {
  redis.disconnect();
  await redisServer.destroy();
});
beforeEach(async () => {
  await redis.flushall();
});

/** Both stores, each on a clock the test moves. */
const stores: [string, (now: () => number) => SessionStore][] = [
  ['in memory', (now) => createMemorySessionStore(now)],
  ['in Redis', (now) => createRedisSessionStore(redis, now)],
];

describe.each(stores)('the admin sessions, %s', (_kind, make) => {
  let clock: number;
  let store: SessionStore;
  beforeEach(() => {
    clock = T0;
    store = make(() => clock);
  });

  it('lasts twelve hours: valid a millisecond before, gone at the twelfth hour and after', async () => {
    const { id, session } = await store.create(writer);
    expect(session.expiresAt).toBe(T0 + TWELVE_HOURS);
    clock = T0 + TWELVE_HOURS - 1;
    expect(await store.find(id)).toEqual(session);
    clock = T0 + TWELVE_HOURS;
    expect(await store.find(id)).toBeUndefined();
    clock = T0 + TWELVE_HOURS + 60_000;
    expect(await store.find(id)).toBeUndefined();
  });

  it('gives each session an unguessable id and CSRF token of its own, and finds it by that id only', async () => {
    const first = await store.create(writer);
    const second = await store.create(reader);
    // 256 bits of id, 192 of CSRF token, both base64url.
    expect(first.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(first.session.csrf).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(second.id).not.toBe(first.id);
    expect(second.session.csrf).not.toBe(first.session.csrf);
    expect(first.session).toEqual({ principal: writer, csrf: first.session.csrf, expiresAt: T0 + TWELVE_HOURS });

    expect(await store.find(first.id)).toEqual(first.session);
    // A read-only session comes back read-only, with the digest it proved.
    expect(await store.find(second.id)).toEqual({
      principal: reader,
      csrf: second.session.csrf,
      expiresAt: T0 + TWELVE_HOURS,
    });
    for (const guess of [undefined, '', first.id.slice(0, -1), `${first.id}x`, digestOf(first.id)])
      expect(await store.find(guess)).toBeUndefined();
  });

  it('ends one session at sign-out and leaves the others; ending nothing is harmless', async () => {
    const first = await store.create(writer);
    const second = await store.create(writer);
    await store.end(first.id);
    expect(await store.find(first.id)).toBeUndefined();
    expect(await store.find(second.id)).toEqual(second.session);
    await expect(store.end(undefined)).resolves.toBeUndefined();
    await expect(store.end('')).resolves.toBeUndefined();
    await expect(store.end('never-issued')).resolves.toBeUndefined();
    expect(await store.find(second.id)).toEqual(second.session);
  });
});

describe('the admin sessions in Redis, as kept', () => {
  it('under the digest of the id, expiring with the session: a dump of Redis holds no usable id', async () => {
    const store = createRedisSessionStore(redis, () => Date.now());
    const { id, session } = await store.create(writer);
    // Beside the session, only the token's index of its sessions (their digests, for the cap per token).
    expect((await redis.keys('*')).sort()).toEqual([
      `killswitch:session:${digestOf(id)}`,
      `killswitch:sessions-of:${writer.digest}`,
    ]);
    expect(JSON.stringify(await redis.zrange(`killswitch:sessions-of:${writer.digest}`, 0, -1))).not.toContain(id);
    const kept = await redis.get(`killswitch:session:${digestOf(id)}`);
    expect(JSON.parse(kept!)).toEqual(session);
    expect(kept).not.toContain(id);
    // Redis drops it at the twelfth hour too, so that ended sessions do not pile up.
    const ttl = await redis.pttl(`killswitch:session:${digestOf(id)}`);
    expect(ttl).toBeGreaterThan(TWELVE_HOURS - 60_000);
    expect(ttl).toBeLessThanOrEqual(TWELVE_HOURS);
  });

  it('is shared: a session made through one instance is found and ended through another', async () => {
    const [a, b] = [createRedisSessionStore(redis), createRedisSessionStore(redis)];
    const { id, session } = await a.create(reader);
    expect(await b.find(id)).toEqual(session);
    await b.end(id);
    expect(await a.find(id)).toBeUndefined();
  });

  it('refuses a kept value that is not a whole session (emptied, or written by something else)', async () => {
    const store = createRedisSessionStore(redis);
    const { id, session } = await store.create(writer);
    const key = `killswitch:session:${digestOf(id)}`;
    for (const value of [
      '',
      '{}',
      JSON.stringify({ ...session, csrf: undefined }),
      JSON.stringify({ ...session, principal: { ...writer, scope: 'root' } }),
    ]) {
      await redis.set(key, value);
      expect(await store.find(id)).toBeUndefined();
    }
  });
});
