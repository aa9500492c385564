import { ProviderStatus } from '@openfeature/server-sdk';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultFlagDocument, KILL_SWITCH } from '../../server/flags/catalog.js';
import { REDIS_KEYS } from '../../server/flags/backend-redis.js';
import { record, startTestApp, waitFor, type TestApp } from '../helpers/app.js';
import { TestRedis } from '../../testing/redis.js';

const instance = (redis: TestRedis, env: Record<string, string> = {}) =>
  startTestApp({ REDIS_URL: redis.url, REDIS_CONNECT_TIMEOUT_MS: '2000', API_RATE_LIMIT_PER_MIN: '100000', ...env });

describe('several instances sharing flags through Redis', () => {
  let redis: TestRedis;
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    redis = await TestRedis.create();
    [a, b] = await Promise.all([instance(redis), instance(redis)]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await redis.destroy();
  });
  afterEach(async () => {
    a.closeSockets();
    b.closeSockets();
    if (a.isReady()) await a.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
  });

  it('a flip made on one instance reaches browsers on the other, with the same version', async () => {
    const onB = await b.socket({ cookie: 'viewer=maya' });
    const onA = await a.socket({ cookie: 'viewer=jonas' });
    await waitFor(() => onA.snapshots.length > 0 && onB.snapshots.length > 0);
    const [seenB, seenA] = [record(onB, 'flag_update'), record(onA, 'flag_update')];
    const { body } = await a.patchFlag(KILL_SWITCH, { state: 'DISABLED' }, { 'x-actor': 'on A' });
    await waitFor(() => seenB.length === 1 && seenA.length === 1, 3000, 'both instances');
    expect(seenB[0]).toEqual({ key: KILL_SWITCH, value: false, version: body.version });
    expect((await b.request(`/api/flags/${KILL_SWITCH}`)).body.version).toBe(body.version);
    expect((await b.request('/?user=sam')).text).toContain('data-show-avatars="false"');
    expect((await b.request('/api/audit?limit=1')).body.entries[0]).toMatchObject({
      version: body.version,
      actor: { name: 'admin', note: 'on A' },
    });
  });

  // 16 writers retrying on 412 make ~140 attempts; each write is a Redis transaction and a push.
  it(
    'compare-and-set across instances: concurrent If-Match writers on both lose nothing',
    { timeout: 60_000 },
    async () => {
      const start = (await a.request(`/api/flags/${KILL_SWITCH}`)).body.version;
      const writer = (app: TestApp, i: number) => async () => {
        for (;;) {
          const { body } = await app.request(`/api/flags/${KILL_SWITCH}`);
          const res = await app.patchFlag(
            KILL_SWITCH,
            { variants: { [`r${i}`]: false } },
            { 'if-match': `"${body.version}"` },
          );
          if (res.status === 200) return;
          expect(res.status).toBe(412);
        }
      };
      await Promise.all(Array.from({ length: 16 }, (_, i) => writer(i % 2 ? a : b, i)()));
      // Each instance applies the other's last write from the change channel, a moment later.
      for (const app of [a, b]) {
        await waitFor(
          async () => (await app.request(`/api/flags/${KILL_SWITCH}`)).body.version === start + 16,
          3000,
          'both instances to converge',
        );
        const after = (await app.request(`/api/flags/${KILL_SWITCH}`)).body;
        expect(Object.keys(after.definition.variants).filter((v) => v.startsWith('r'))).toHaveLength(16);
      }
    },
  );

  it('shows cluster-wide browser counts on the admin page', async () => {
    const admin = await a.socket({ auth: { role: 'admin' } });
    const counts = record(admin, 'admin_browsers');
    await b.socket({ cookie: 'viewer=lena' });
    await b.socket({ cookie: 'viewer=theo' });
    await a.socket({ cookie: 'viewer=sam' });
    await waitFor(() => counts.at(-1) === 3, 5000, 'three browsers across two instances');
  });
});

describe('Redis going away and coming back', () => {
  let redis: TestRedis;
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    redis = await TestRedis.create({ persist: false });
    [a, b] = await Promise.all([instance(redis), instance(redis)]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await redis.destroy();
  });

  it('keeps serving the last known flags, refuses writes with 503, pushes nothing false, and keeps a kill when Redis comes back empty', async () => {
    await a.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    await waitFor(() => b.repository!.get(KILL_SWITCH)!.definition.state === 'DISABLED');
    const socket = await b.socket({ cookie: 'viewer=maya' });
    await waitFor(() => socket.snapshots.length > 0);
    const seen = record(socket, 'flag_update');

    const downAt = Date.now();
    await redis.stop();
    await waitFor(
      () =>
        a.repository!.status().status === ProviderStatus.STALE &&
        b.repository!.status().status === ProviderStatus.STALE,
      5000,
      'both instances to see Redis down',
    );
    const write = await a.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
    expect(write.status).toBe(503);
    expect(write.body.message).toMatch(/Redis is unavailable: the flag was not changed/);
    expect((await b.request('/?user=maya')).text).toContain('data-show-avatars="false"');
    expect((await a.request('/readyz')).status).toBe(200); // an outage after start keeps 200

    // Redis comes back with nothing in it (no persistence): the instances re-seed it from their
    // last known flags, so the kill is not undone, and nobody gets a push.
    await redis.start();
    await waitFor(
      async () => (await a.patchFlag(KILL_SWITCH, { variants: { probe: false } })).status === 200,
      10_000,
      'writes to work again',
    );
    console.log(`redis restart: writes back ${Date.now() - downAt} ms after Redis went down (about 200 ms of it down)`);
    const client = redis.client();
    expect(JSON.parse((await client.hget(REDIS_KEYS.flags, KILL_SWITCH))!).state).toBe('DISABLED');
    client.disconnect();
    // The probe write's push (none: it changes no value) and any from the re-seed have been delivered.
    await waitFor(
      () => b.provider.versionOf(KILL_SWITCH) === a.provider.versionOf(KILL_SWITCH),
      5000,
      'b to have the probe write',
    );
    await b.delivered([socket]);
    expect(seen).toEqual([]);
    expect((await b.request(`/api/flags/${KILL_SWITCH}`)).body.definition.state).toBe('DISABLED');
  });
});

describe('instances starting together, restarting, or before Redis', () => {
  it('seed an empty Redis once, even when three start together, and a kill survives restarting them all', async () => {
    const redis = await TestRedis.create();
    try {
      const apps = await Promise.all([instance(redis), instance(redis), instance(redis)]);
      const client = redis.client();
      const defaults = Object.keys(defaultFlagDocument().flags);
      expect(Object.values(await client.hgetall(REDIS_KEYS.versions))).toEqual(defaults.map(() => '1'));
      expect(await client.llen(REDIS_KEYS.audit)).toBe(defaults.length);
      await apps[0].patchFlag(KILL_SWITCH, { state: 'DISABLED' });
      await Promise.all(apps.map((app) => app.stop()));

      const again = await instance(redis);
      expect((await again.request('/?user=maya')).text).toContain('data-show-avatars="false"');
      expect(await client.llen(REDIS_KEYS.audit)).toBe(defaults.length + 1);
      client.disconnect();
      await again.stop();
    } finally {
      await redis.destroy();
    }
  });

  it('start with Redis unreachable: a bounded wait, the safe defaults and /readyz 503, then the real flags when Redis answers', async () => {
    const redis = await TestRedis.create({ start: false });
    let app: TestApp | undefined;
    try {
      const started = performance.now();
      app = await instance(redis, { REDIS_CONNECT_TIMEOUT_MS: '300' });
      expect(performance.now() - started).toBeLessThan(3000);
      expect(await app.request('/readyz')).toMatchObject({
        status: 503,
        body: { detail: expect.stringMatching(/Redis unreachable/) },
      });
      expect((await app.request('/?user=maya')).text).toContain('data-show-avatars="false"');
      const socket = await app.socket({ cookie: 'viewer=maya' });
      await waitFor(() => socket.snapshots.length > 0);
      expect(socket.snapshots[0]![KILL_SWITCH]).toBe(false);
      const seen = record(socket, 'flag_update');

      await redis.start();
      await waitFor(async () => (await app!.request('/readyz')).status === 200, 10_000, 'ready');
      await waitFor(() => seen.some((u) => u.key === KILL_SWITCH && u.value === true), 3000, 'the real value pushed');
      expect((await app.request('/?user=maya')).text).toContain('data-show-avatars="true"');
    } finally {
      await app?.stop();
      await redis.destroy();
    }
  });
});
