import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createFileTokenStore,
  createRedisTokenStore,
  tokenFiles,
  type TokenStore,
} from '../../server/access/token-store.js';
import {
  ADMIN_TOKEN_NAME,
  createTokenRegistry,
  digestOf,
  newToken,
  type TokenRegistry,
} from '../../server/access/tokens.js';
import { createLogger } from '../../server/observability/logger.js';
import { capturingLogger, waitFor } from '../helpers/app.js';
import { TestRedis } from '../../testing/redis.js';

const logger = createLogger('silent');

describe('the token registry, on the file store', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'killswitch-tokens-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('waits at close for a use it is still writing: the use is on disk, no lock or temporary file is left', async () => {
    const adminToken = newToken();
    const registry = await createTokenRegistry({ adminToken, store: createFileTokenStore({ dir, logger }), logger });
    const before = Date.now();
    // A first use is written at once (in the background: verify answers without waiting for the disk).
    expect(registry.verify(adminToken)).toMatchObject({ name: ADMIN_TOKEN_NAME, scope: 'full' });
    await registry.close();

    // Closed: nothing of that write is still under way (a stop removes or leaves the folder as it is).
    const usage = JSON.parse(await readFile(tokenFiles(dir).usage, 'utf8')) as Record<string, string>;
    expect(Date.parse(usage[ADMIN_TOKEN_NAME]!)).toBeGreaterThanOrEqual(before - 1000);
    expect((await readdir(dir)).sort()).toEqual([path.basename(tokenFiles(dir).usage)]);
  });
});

/** The file store, with each use it is asked to record (the registry writes them in the background). */
function recordingStore(dir: string) {
  const store = createFileTokenStore({ dir, logger });
  const marked: [string, string][] = [];
  return {
    marked,
    store: {
      ...store,
      markUsed: (name: string, at: string) => {
        marked.push([name, at]);
        return store.markUsed(name, at);
      },
    } satisfies TokenStore,
  };
}

describe('the token registry', () => {
  let dir: string;
  let registries: TokenRegistry[];
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'killswitch-registry-'));
    registries = [];
  });
  afterEach(async () => {
    vi.useRealTimers();
    await Promise.all(registries.map((registry) => registry.close()));
    await rm(dir, { recursive: true, force: true });
  });
  const open = async (store: TokenStore = createFileTokenStore({ dir, logger }), adminToken = ADMIN) => {
    const registry = await createTokenRegistry({ adminToken, store, logger });
    registries.push(registry);
    return registry;
  };
  /** A token made as `npm run token -- create` makes it: only its digest is kept. */
  const create = async (name: string, scope: 'full' | 'read-only' = 'full') => {
    const token = newToken();
    await createFileTokenStore({ dir, logger }).add({
      name,
      scope,
      digest: digestOf(token),
      createdAt: '2026-12-07T08:00:00.000Z',
    });
    return token;
  };
  const ADMIN = 'the-admin-token-0123456789';

  it('knows the admin token and the stored ones, each by name and scope; nothing else', async () => {
    const writer = await create('ci-bot');
    const reader = await create('dashboards', 'read-only');
    const registry = await open();
    expect(registry.verify(ADMIN)).toEqual({ name: ADMIN_TOKEN_NAME, scope: 'full', digest: digestOf(ADMIN) });
    expect(registry.verify(writer)).toEqual({ name: 'ci-bot', scope: 'full', digest: digestOf(writer) });
    expect(registry.verify(reader)).toEqual({ name: 'dashboards', scope: 'read-only', digest: digestOf(reader) });
    for (const wrong of [undefined, '', newToken(), `${writer} `, writer.slice(0, -1), digestOf(writer)])
      expect(registry.verify(wrong)).toBeUndefined();
  });

  it('lets no stored token take the admin name, nor the admin token a stored name', async () => {
    // tokens.json edited by hand: a record named "admin", and one that copies the admin token's digest.
    const impostor = newToken();
    const store = createFileTokenStore({ dir, logger });
    await store.add({ name: ADMIN_TOKEN_NAME, scope: 'full', digest: digestOf(impostor) });
    await store.add({ name: 'copycat', scope: 'read-only', digest: digestOf(ADMIN) });
    const registry = await open();
    expect(registry.verify(impostor)).toBeUndefined();
    expect(registry.verify(ADMIN)).toEqual({ name: ADMIN_TOKEN_NAME, scope: 'full', digest: digestOf(ADMIN) });
    expect((await registry.list()).map((token) => [token.name, token.builtIn])).toEqual([
      [ADMIN_TOKEN_NAME, true],
      ['copycat', false],
    ]);
  });

  it('sees a token created or revoked elsewhere at once, tells its listeners, and a session proved with a revoked or replaced token is no longer current', async () => {
    const registry = await open();
    let changes = 0;
    registry.onChange(() => changes++);
    const first = await create('ci-bot');
    await waitFor(() => registry.verify(first) !== undefined, 5000, 'the new token');
    await waitFor(() => changes > 0, 5000, 'the listener');
    const proved = registry.verify(first)!;
    expect(registry.isCurrent(proved)).toBe(true);
    expect(registry.isCurrent(registry.verify(ADMIN)!)).toBe(true);
    // Same digest under another name, or another digest under this name: not this token.
    expect(registry.isCurrent({ ...proved, name: 'other' })).toBe(false);
    expect(registry.isCurrent({ ...proved, digest: digestOf(ADMIN) })).toBe(false);

    const seen = changes;
    await createFileTokenStore({ dir, logger }).remove('ci-bot');
    await waitFor(() => registry.verify(first) === undefined, 5000, 'the revocation');
    await waitFor(() => changes > seen, 5000, 'the listener');
    expect(registry.isCurrent(proved)).toBe(false);
    // The name given to a new token: a session of the old one stays over.
    const second = await create('ci-bot');
    await waitFor(() => registry.verify(second) !== undefined, 5000, 'the new ci-bot');
    expect(registry.isCurrent(proved)).toBe(false);
    expect(registry.isCurrent(registry.verify(second)!)).toBe(true);
  });

  it('keeps the tokens it knows when the store cannot be read, and says so', async () => {
    const token = await create('ci-bot');
    const { logger: watching, lines } = capturingLogger('warn');
    const registry = await createTokenRegistry({
      adminToken: ADMIN,
      store: createFileTokenStore({ dir, logger }),
      logger: watching,
    });
    registries.push(registry);
    let changes = 0;
    registry.onChange(() => changes++);
    await writeFile(tokenFiles(dir).tokens, '{"tokens": "damaged"}');
    await waitFor(() => lines.some((line) => /could not load the access tokens/.test(line)), 5000, 'the error');
    expect(JSON.parse(lines.find((line) => /could not load/.test(line))!)).toMatchObject({
      level: 50,
      err: { message: expect.stringContaining('is not a token file') },
    });
    expect(registry.verify(token)).toMatchObject({ name: 'ci-bot' });
    expect(changes).toBe(0);
  });

  it('starts with the admin token alone when the store does not answer in time, and loads the others when it does', async () => {
    const server = await TestRedis.create();
    const redis = new Redis(server.url);
    redis.on('error', () => undefined);
    try {
      const token = newToken();
      await createRedisTokenStore({ redis, logger }).add({ name: 'fleet-bot', scope: 'full', digest: digestOf(token) });
      await server.stop();
      // Redis away: the store's commands wait in the client's queue.
      const started = performance.now();
      const registry = await createTokenRegistry({
        adminToken: ADMIN,
        store: createRedisTokenStore({ redis, logger }),
        logger,
        loadTimeoutMs: 200,
      });
      registries.push(registry);
      expect(performance.now() - started).toBeLessThan(2500);
      expect(registry.verify(ADMIN)).toMatchObject({ name: ADMIN_TOKEN_NAME });
      expect(registry.verify(token)).toBeUndefined();
      await server.start();
      await waitFor(() => registry.verify(token) !== undefined, 10_000, 'the named tokens');
    } finally {
      redis.disconnect();
      await server.destroy();
    }
  });

  it("writes a token's use at most once a minute, and at close the last one not yet written", async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const T0 = Date.parse('2026-12-07T08:00:00.000Z');
    const at = (ms: number) => new Date(T0 + ms).toISOString();
    const writer = await create('ci-bot');
    const reader = await create('dashboards', 'read-only');
    const { store, marked } = recordingStore(dir);
    const registry = await open(store);

    vi.setSystemTime(T0);
    registry.verify(writer);
    vi.setSystemTime(T0 + 59_999);
    registry.verify(writer);
    registry.verify(reader);
    vi.setSystemTime(T0 + 60_000);
    registry.verify(writer);
    vi.setSystemTime(T0 + 60_001);
    registry.verify(writer);
    registry.verify(undefined);
    registry.verify(newToken());
    expect(marked).toEqual([
      ['ci-bot', at(0)],
      ['dashboards', at(59_999)],
      ['ci-bot', at(60_000)],
    ]);
    await registry.close();
    registries = [];
    // The reader's only use was written already.
    expect(marked.slice(3)).toEqual([['ci-bot', at(60_001)]]);
    expect(await createFileTokenStore({ dir, logger }).lastUsed()).toEqual({
      'ci-bot': at(60_001),
      dashboards: at(59_999),
    });
  });

  it('lists every token, the admin first, each with when it was last used here or by another server, whichever is later', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const T0 = Date.parse('2026-12-07T08:00:00.000Z');
    const at = (ms: number) => new Date(T0 + ms).toISOString();
    const writer = await create('ci-bot');
    const reader = await create('dashboards', 'read-only');
    await create('never-used');
    const other = createFileTokenStore({ dir, logger });
    const { store } = recordingStore(dir);
    const registry = await open(store);

    vi.setSystemTime(T0);
    registry.verify(ADMIN);
    registry.verify(writer);
    registry.verify(reader);
    await registry.close();
    registries = [];
    const reopened = await open(store);
    vi.setSystemTime(T0 + 5_000);
    reopened.verify(writer);
    reopened.verify(reader);
    // A second use within the minute: known here, not yet written.
    vi.setSystemTime(T0 + 7_000);
    reopened.verify(writer);
    // Another server: later for the reader, earlier for the writer.
    await other.markUsed('dashboards', at(9_000));
    await other.markUsed('ci-bot', at(1_000));
    expect(await reopened.list()).toEqual([
      { name: ADMIN_TOKEN_NAME, scope: 'full', createdAt: undefined, lastUsedAt: at(0), builtIn: true },
      { name: 'ci-bot', scope: 'full', createdAt: '2026-12-07T08:00:00.000Z', lastUsedAt: at(7_000), builtIn: false },
      {
        name: 'dashboards',
        scope: 'read-only',
        createdAt: '2026-12-07T08:00:00.000Z',
        lastUsedAt: at(9_000),
        builtIn: false,
      },
      {
        name: 'never-used',
        scope: 'full',
        createdAt: '2026-12-07T08:00:00.000Z',
        lastUsedAt: undefined,
        builtIn: false,
      },
    ]);
    // With the record of uses unreadable, it lists what it saw here.
    await rm(tokenFiles(dir).usage);
    await mkdir(tokenFiles(dir).usage);
    expect((await reopened.list()).map((token) => token.lastUsedAt)).toEqual([
      undefined,
      at(7_000),
      at(5_000),
      undefined,
    ]);
  });

  it('a use it cannot record is a warning, never a failure of the request or of the close', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { logger: watching, lines } = capturingLogger('warn');
    // A folder where the record of uses should be: every write of it fails.
    await mkdir(tokenFiles(dir).usage, { recursive: true });
    const registry = await createTokenRegistry({
      adminToken: ADMIN,
      store: createFileTokenStore({ dir, logger }),
      logger: watching,
    });
    expect(registry.verify(ADMIN)).toMatchObject({ name: ADMIN_TOKEN_NAME });
    // A second use within the minute: left for the close to write, which fails too.
    vi.setSystemTime(Date.now() + 1000);
    expect(registry.verify(ADMIN)).toMatchObject({ name: ADMIN_TOKEN_NAME });
    await registry.close();
    expect(lines.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({
        level: 40,
        msg: "could not record a token's use",
        err: expect.objectContaining({ code: 'EISDIR' }),
      }),
    ]);
  });

  it('stops watching the store at close: a token created after it is not seen', async () => {
    const closed = await open();
    let closedChanges = 0;
    closed.onChange(() => closedChanges++);
    await closed.close();
    registries = [];
    // A registry opened after it is the signal that the change was seen: the closed one, were it
    // still watching, would have had the same event first.
    const open2 = await open();
    let changes = 0;
    open2.onChange(() => changes++);
    const token = await create('after-close');
    await waitFor(() => changes > 0, 5000, 'the open registry');
    expect(open2.verify(token)).toMatchObject({ name: 'after-close' });
    expect(closedChanges).toBe(0);
    expect(closed.verify(token)).toBeUndefined();
  });
});
