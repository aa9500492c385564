import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createMemorySessionStore,
  createRedisSessionStore,
  SESSIONS_PER_TOKEN,
  type EndedSessions,
  type SessionStore,
} from '../../server/access/sessions.js';
import type { Principal } from '../../server/access/tokens.js';
import { TestRedis } from '../../testing/redis.js';

const admin: Principal = { name: 'admin', scope: 'full', digest: 'a'.repeat(64) };
const kiosk: Principal = { name: 'kiosk', scope: 'read-only', digest: 'b'.repeat(64) };

/** Every session end the store tells of, as it tells them. */
function endsOf(store: SessionStore): EndedSessions[] {
  const ends: EndedSessions[] = [];
  store.onEnded((ended) => ends.push(ended));
  return ends;
}

/** Twenty sessions of a token, one signed out (twice): the next sign-in of the token ends none. */
async function signedOutFreesItsPlace(store: SessionStore): Promise<void> {
  const ends = endsOf(store);
  const oncall: Principal = { name: 'on-call', scope: 'full', digest: 'c'.repeat(64) };
  const created = [];
  for (let i = 0; i < SESSIONS_PER_TOKEN; i++) created.push(await store.create(oncall));
  await store.end(created[4]!.id);
  await store.end(created[4]!.id);
  const next = await store.create(oncall);
  expect(ends).toEqual([{ keys: [created[4]!.key], reason: 'signed-out' }]);
  const live = await Promise.all([...created, next].map(({ id }) => store.find(id)));
  expect(live.filter(Boolean)).toHaveLength(SESSIONS_PER_TOKEN);
}

describe('the in-memory session store', () => {
  it("the sign-in flood that emptied it (10,005 sessions of a read-only token) leaves another token's session", async () => {
    const store = createMemorySessionStore();
    const kept = await store.create(admin);
    const flood = [];
    for (let i = 0; i < 10_005; i++) flood.push((await store.create(kiosk)).id);

    expect(await store.find(kept.id)).toMatchObject({ principal: admin });
    // The flooding token keeps its newest twenty, and no more.
    const live = await Promise.all(flood.map((id) => store.find(id)));
    expect(live.filter(Boolean)).toHaveLength(SESSIONS_PER_TOKEN);
    expect(live.slice(-SESSIONS_PER_TOKEN).every(Boolean)).toBe(true);
  });

  it('tells of each session it ends (replaced, signed out) once, by key; an expired one is dropped, not told', async () => {
    let now = 1_000_000;
    const store = createMemorySessionStore(() => now);
    const ends = endsOf(store);
    const created = [];
    for (let i = 0; i <= SESSIONS_PER_TOKEN; i++) created.push(await store.create(kiosk));
    expect(ends).toEqual([{ keys: [created[0]!.key], reason: 'replaced' }]);

    await store.end(created[1]!.id);
    await store.end(created[1]!.id);
    expect(ends.slice(1)).toEqual([{ keys: [created[1]!.key], reason: 'signed-out' }]);

    now += 12 * 60 * 60 * 1000;
    expect(await store.find(created[2]!.id)).toBeUndefined();
    // The expired ones make room: a new sign-in replaces none of them.
    await store.create(kiosk);
    expect(ends).toHaveLength(2);
  });

  it('an expired session frees its place: twenty expired, the next sign-in replaces none', async () => {
    let now = 1_000_000;
    const store = createMemorySessionStore(() => now);
    const ends = endsOf(store);
    for (let i = 0; i < SESSIONS_PER_TOKEN; i++) await store.create(kiosk);
    now += 12 * 60 * 60 * 1000 + 1;
    await store.create(kiosk);
    expect(ends).toEqual([]);
  });

  it('a signed-out session frees its place: the next sign-in replaces none', async () => {
    await signedOutFreesItsPlace(createMemorySessionStore());
  });
});

describe('the Redis session store', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await TestRedis.create({ persist: false });
  });
  afterAll(() => redis.destroy());

  it("ends the oldest of a token's sessions, even among sign-ins in one millisecond", async () => {
    const client = redis.client();
    const store = createRedisSessionStore(client, () => 5_000_000);
    const ends = endsOf(store);
    const kept = await store.create(admin);
    const created = [];
    for (let i = 0; i <= SESSIONS_PER_TOKEN; i++) created.push(await store.create(kiosk));

    expect(ends).toEqual([{ keys: [created[0]!.key], reason: 'replaced' }]);
    expect(await store.find(created[0]!.id)).toBeUndefined();
    expect(await store.find(created[1]!.id)).toMatchObject({ principal: kiosk });
    expect(await store.find(kept.id)).toMatchObject({ principal: admin });
    client.disconnect();
  });

  it('holds the cap when two instances sign one token in at once: twenty live, every other one ended and told once', async () => {
    const [one, two] = [redis.client(), redis.client()];
    const stores = [createRedisSessionStore(one), createRedisSessionStore(two)];
    const ends = stores.flatMap((store) => [endsOf(store)]);
    const created = await Promise.all(Array.from({ length: 50 }, (_, i) => stores[i % 2]!.create(admin)));

    const live = await Promise.all(created.map(({ id }) => stores[0]!.find(id)));
    expect(live.filter(Boolean)).toHaveLength(SESSIONS_PER_TOKEN);
    const told = ends.flat().flatMap((ended) => ended.keys);
    expect(told).toHaveLength(50 - SESSIONS_PER_TOKEN);
    expect(new Set(told)).toEqual(new Set(created.filter((_, i) => !live[i]).map(({ key }) => key)));
    one.disconnect();
    two.disconnect();
  });

  it('a signed-out session frees its place, and is told of once however often it is ended', async () => {
    const client = redis.client();
    await signedOutFreesItsPlace(createRedisSessionStore(client));
    client.disconnect();
  });
});
