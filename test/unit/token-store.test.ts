import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createFileTokenStore,
  createRedisTokenStore,
  tokenFiles,
  type TokenRecord,
  type TokenStore,
} from '../../server/access/token-store.js';
import { digestOf, newToken } from '../../server/access/tokens.js';
import { createLogger } from '../../server/observability/logger.js';
import { waitFor } from '../helpers/app.js';
import { TestRedis } from '../../testing/redis.js';

const logger = createLogger('silent');
const CHANGED = 'killswitch:tokens:changed';

const record = (name: string, scope: TokenRecord['scope'] = 'full'): TokenRecord => ({
  name,
  scope,
  digest: digestOf(newToken()),
  createdAt: '2026-12-07T08:00:00.000Z',
});

/** What every token store does, whichever it is. */
function behavesAsATokenStore(make: () => TokenStore | Promise<TokenStore>) {
  it('adds a token once per name, lists it as kept, and removes it by name', async () => {
    const store = await make();
    expect(await store.list()).toEqual([]);
    const ci = record('ci-bot');
    const reader = record('dashboards', 'read-only');
    expect(await store.add(ci)).toBe(true);
    expect(await store.add(reader)).toBe(true);
    // A name is taken until it is revoked, whatever the new token.
    expect(await store.add({ ...record('ci-bot'), scope: 'read-only' })).toBe(false);
    expect(sorted(await store.list())).toEqual([ci, reader]);

    expect(await store.remove('ci-bot')).toBe(true);
    expect(await store.remove('ci-bot')).toBe(false);
    expect(await store.remove('nobody')).toBe(false);
    expect(await store.list()).toEqual([reader]);
    // Revoked, the name can be given to a new token.
    const again = record('ci-bot');
    expect(await store.add(again)).toBe(true);
    expect(sorted(await store.list())).toEqual([again, reader]);
  });

  it('records when each token was last used', async () => {
    const store = await make();
    expect(await store.lastUsed()).toEqual({});
    await store.markUsed('ci-bot', '2026-12-07T08:00:00.000Z');
    await store.markUsed('admin', '2026-12-07T08:01:00.000Z');
    await store.markUsed('ci-bot', '2026-12-07T08:02:00.000Z');
    expect(await store.lastUsed()).toEqual({ 'ci-bot': '2026-12-07T08:02:00.000Z', admin: '2026-12-07T08:01:00.000Z' });
  });

  it('tells a watcher of a token added or revoked through another store on the same place (another instance, or the CLI)', async () => {
    const watched = await make();
    const other = await make();
    let calls = 0;
    const stop = await watched.watch(() => calls++);
    try {
      await other.add(record('fleet-bot'));
      await waitFor(() => calls > 0, 5000, 'the add to be seen');
      const afterAdd = calls;
      await other.remove('fleet-bot');
      await waitFor(() => calls > afterAdd, 5000, 'the revocation to be seen');
      expect(await watched.list()).toEqual([]);
    } finally {
      await stop();
    }
  });
}

const sorted = (records: TokenRecord[]) => [...records].sort((a, b) => a.name.localeCompare(b.name));

describe('the token store in a file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = path.join(await mkdtemp(path.join(tmpdir(), 'killswitch-token-store-')), 'not-yet-made');
  });
  afterEach(() => rm(path.dirname(dir), { recursive: true, force: true }));
  const store = () => createFileTokenStore({ dir, logger });

  behavesAsATokenStore(() => createFileTokenStore({ dir, logger }));

  it('keeps digests only, in tokens.json that only its owner can read, with no lock or temporary file left', async () => {
    const token = newToken();
    await store().add({ name: 'ci-bot', scope: 'full', digest: digestOf(token) });
    await store().markUsed('ci-bot', '2026-12-07T08:00:00.000Z');
    const files = tokenFiles(dir);
    expect((await readdir(dir)).sort()).toEqual(['tokens.json', 'tokens.used.json']);
    for (const file of [files.tokens, files.usage]) expect((await stat(file)).mode & 0o777).toBe(0o600);
    const text = await readFile(files.tokens, 'utf8');
    expect(text).not.toContain(token);
    // Written for a person to read too: indented, one line a field, ending in a newline.
    expect(text).toBe(
      `${JSON.stringify({ tokens: [{ name: 'ci-bot', scope: 'full', digest: digestOf(token) }] }, null, 2)}\n`,
    );
    expect(await readFile(files.usage, 'utf8')).toBe(
      `${JSON.stringify({ 'ci-bot': '2026-12-07T08:00:00.000Z' }, null, 2)}\n`,
    );
  });

  it('loses no write when many are made at once, from separate stores (two CLIs, servers recording uses)', async () => {
    const names = Array.from({ length: 5 }, (_, i) => `bot-${i}`);
    const added = await Promise.all(names.map((name) => store().add(record(name))));
    expect(added).toEqual(names.map(() => true));
    // Everyone racing for one name: exactly one gets it.
    const raced = await Promise.all(Array.from({ length: 3 }, () => store().add(record('contested'))));
    expect(raced.filter(Boolean)).toHaveLength(1);
    await Promise.all(
      names.map((name, i) => store().markUsed(name, `2026-12-07T08:${String(i).padStart(2, '0')}:00.000Z`)),
    );
    expect((await store().list()).map((r) => r.name).sort()).toEqual([...names, 'contested'].sort());
    expect(Object.keys(await store().lastUsed()).sort()).toEqual([...names].sort());
    await Promise.all(names.map((name) => store().remove(name)));
    expect((await store().list()).map((r) => r.name)).toEqual(['contested']);
  });

  it('keeps the later use when two servers record one token out of order', async () => {
    await store().markUsed('ci-bot', '2026-12-07T08:05:00.000Z');
    await store().markUsed('ci-bot', '2026-12-07T08:01:00.000Z');
    expect(await store().lastUsed()).toEqual({ 'ci-bot': '2026-12-07T08:05:00.000Z' });
    await store().markUsed('ci-bot', '2026-12-07T08:05:00.000Z');
    expect(await store().lastUsed()).toEqual({ 'ci-bot': '2026-12-07T08:05:00.000Z' });
  });

  it('starts the record of uses again when its file is damaged (it is only a record of uses)', async () => {
    await mkdir(dir, { recursive: true });
    await writeFile(tokenFiles(dir).usage, '{"ci-bot": 12');
    await store().markUsed('ci-bot', '2026-12-07T08:00:00.000Z');
    expect(await store().lastUsed()).toEqual({ 'ci-bot': '2026-12-07T08:00:00.000Z' });
  });

  it('refuses a tokens.json that is not one, naming the file, rather than reading fewer tokens', async () => {
    await mkdir(dir, { recursive: true });
    const file = tokenFiles(dir).tokens;
    const digest = digestOf('ks_x');
    for (const bad of [
      { tokens: [{ name: 'ci-bot', scope: 'root', digest }] },
      { tokens: [{ name: 'ci-bot', scope: 'full', digest: digest.toUpperCase() }] },
      // A digest is exactly 64 hex digits: nothing before, nothing after.
      { tokens: [{ name: 'ci-bot', scope: 'full', digest: `a${digest}` }] },
      { tokens: [{ name: 'ci-bot', scope: 'full', digest: `g${digest.slice(1)}` }] },
      { tokens: [{ name: 'ci-bot', scope: 'full', digest: digest.slice(1) }] },
      { tokens: [{ scope: 'full', digest }] },
      { tokens: [{ name: 'ci-bot', scope: 'full', digest, createdAt: 12 }] },
      { tokens: {} },
      [],
    ]) {
      await writeFile(file, JSON.stringify(bad));
      // With what is wrong, in zod's words.
      await expect(store().list()).rejects.toThrow(new RegExp(`^${file} is not a token file: (Invalid|Too) `));
      // And no change is written over it.
      await expect(store().add(record('new-bot'))).rejects.toThrow(`${file} is not a token file: `);
      expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(bad);
    }
    await writeFile(tokenFiles(dir).usage, JSON.stringify({ 'ci-bot': 12 }));
    await expect(store().lastUsed()).rejects.toThrow(`${tokenFiles(dir).usage} is not a token file: `);
  });

  it('says why it cannot read the tokens, rather than reading none', async () => {
    await mkdir(tokenFiles(dir).tokens, { recursive: true });
    await expect(store().list()).rejects.toMatchObject({ code: 'EISDIR' });
  });

  it('is watched in its folder: a change after the watch stopped is not reported', async () => {
    const watched = store();
    let stoppedCalls = 0;
    const stop = await watched.watch(() => stoppedCalls++);
    await stop();
    // A second watcher, started after, is the signal that the change was seen: the stopped one,
    // were it still watching, would have had the same event first (and the same debounce).
    let calls = 0;
    const stopSecond = await watched.watch(() => calls++);
    await store().add(record('after-stop'));
    await waitFor(() => calls > 0, 5000, 'the second watcher');
    await stopSecond();
    expect(stoppedCalls).toBe(0);
    await expect(watched.close()).resolves.toBeUndefined();
  });
});

describe('the token store in Redis', () => {
  let server: TestRedis;
  const client = () => server.client();
  beforeAll(async () => {
    server = await TestRedis.create({ persist: false });
  });
  afterAll(() => server.destroy());
  beforeEach(async () => {
    await client().flushall();
  });

  behavesAsATokenStore(async () => createRedisTokenStore({ redis: await appClient(), logger }));

  /** A connection made as the app makes its access connection: lazy, and no queue while Redis is away. */
  const appClient = async () => {
    const made = server.client({
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: () => 100,
    });
    await made.connect();
    return made;
  };

  it('a watch started while Redis is away, and stopped before it is back, fails nothing', async () => {
    await server.stop();
    try {
      const store = createRedisTokenStore({ redis: client(), logger });
      let calls = 0;
      const stop = await store.watch(() => calls++);
      await stop();
      expect(calls).toBe(0);
    } finally {
      await server.start();
    }
  });

  it('keeps each token as a field of one hash, and publishes a change only when there was one', async () => {
    const store = createRedisTokenStore({ redis: client(), logger });
    const listener = client();
    const published: string[] = [];
    listener.on('message', (channel: string, name: string) => channel === CHANGED && published.push(name));
    await listener.subscribe(CHANGED);

    const ci = record('ci-bot');
    await store.add(ci);
    expect(await store.add(record('ci-bot'))).toBe(false);
    expect(await store.remove('nobody')).toBe(false);
    await store.remove('ci-bot');
    await store.add(record('last'));
    // Published in order on one connection: when "last" is in, any other would be too.
    await waitFor(() => published.includes('last'), 5000, 'the publications');
    expect(published).toEqual(['ci-bot', 'ci-bot', 'last']);
    expect(Object.keys(await client().hgetall('killswitch:tokens'))).toEqual(['last']);
    expect(JSON.parse((await client().hget('killswitch:tokens', 'last'))!)).toMatchObject({
      name: 'last',
      scope: 'full',
    });
    listener.disconnect();
  });

  it('refuses a kept record that is not a token', async () => {
    await client().hset(
      'killswitch:tokens',
      'ci-bot',
      JSON.stringify({ name: 'ci-bot', scope: 'full', digest: 'not-a-digest' }),
    );
    await expect(createRedisTokenStore({ redis: client(), logger }).list()).rejects.toThrow();
  });

  it('keeps uses in a hash of their own, the last one written winning', async () => {
    const store = createRedisTokenStore({ redis: client(), logger });
    await store.markUsed('ci-bot', '2026-12-07T08:02:00.000Z');
    expect(await client().hgetall('killswitch:tokens:used')).toEqual({ 'ci-bot': '2026-12-07T08:02:00.000Z' });
    expect(await store.list()).toEqual([]);
    await expect(store.close()).resolves.toBeUndefined();
  });

  it('loads again when Redis comes back (changes published while it was away were missed), and stops at once when told', async () => {
    const redis = client();
    const store = createRedisTokenStore({ redis, logger });
    let calls = 0;
    const stop = await store.watch(() => calls++);
    const subscribers = async () => Number(((await client().pubsub('NUMSUB', CHANGED)) as [string, number])[1]);
    await waitFor(async () => (await subscribers()) === 1, 5000, 'the subscription');
    // Its own connection and the subscriber each say so when they are (back) up.
    const before = calls;
    await server.stop();
    await server.start();
    await waitFor(() => calls >= before + 2, 10_000, 'both connections back');

    await stop();
    await waitFor(async () => (await subscribers()) === 0, 5000, 'the subscriber gone');
    const stopped = calls;
    // Redis away and back once more: the store's connection is ready again (this listener, added
    // after the store's, runs after it), and the stopped watch is not told.
    const ready = new Promise((resolve) => redis.once('ready', resolve));
    await server.stop();
    await server.start();
    await ready;
    expect(calls).toBe(stopped);
  });
});
