import { watch } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import lockfile from 'proper-lockfile';
import writeFileAtomic from 'write-file-atomic';
import { z } from 'zod';
import type { Logger } from '../observability/logger.js';

/** A named token as it is kept: its digest, never the token. */
export interface TokenRecord {
  name: string;
  scope: 'full' | 'read-only';
  /** SHA-256 of the token, hex. */
  digest: string;
  createdAt?: string | undefined;
}

/**
 * Where the named tokens live: a file beside the flag store (mode 0600), or Redis with
 * `REDIS_URL`. `npm run token` writes it; every server watches it.
 */
export interface TokenStore {
  list(): Promise<TokenRecord[]>;
  /** Adds a token; false when the name is taken. */
  add(record: TokenRecord): Promise<boolean>;
  /** Removes a token; false when there was none of that name. */
  remove(name: string): Promise<boolean>;
  /** When each token was last used, by name (written by the servers, at most once a minute each). */
  lastUsed(): Promise<Record<string, string>>;
  markUsed(name: string, at: string): Promise<void>;
  /** Calls `onChange` whenever the tokens change, whoever changed them. Resolves to a stop function. */
  watch(onChange: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

const recordSchema = z.object({
  name: z.string(),
  scope: z.enum(['full', 'read-only']),
  digest: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: z.string().optional(),
});
const fileSchema = z.object({ tokens: z.array(recordSchema) });
const usageSchema = z.record(z.string(), z.string());

/** The token store's files: `tokens.json` (written by `npm run token`) and `tokens.used.json` (by the servers). */
export function tokenFiles(dir: string) {
  return { dir, tokens: path.join(dir, 'tokens.json'), usage: path.join(dir, 'tokens.used.json') };
}

async function readJson<T>(file: string, schema: z.ZodType<T>, empty: T): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return empty;
    throw error;
  }
  const parsed = schema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${file} is not a token file: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

const writeSecret = (file: string, value: unknown) =>
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });

/**
 * Read, change, write, holding a lock on the file (`FILE.lock`, proper-lockfile): two
 * `npm run token` at once, or two servers recording uses, must not lose each other's write.
 */
async function update<T>(file: string, change: () => Promise<T>): Promise<T> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const release = await lockfile.lock(file, {
    realpath: false,
    stale: 10_000,
    retries: { retries: 50, minTimeout: 20, maxTimeout: 200 },
  });
  try {
    return await change();
  } finally {
    await release();
  }
}

/**
 * Tokens in `tokens.json` beside the flag store. Its writer is `npm run token` (one person at a
 * terminal); the servers only read it, and watch its folder (an atomic save replaces the file).
 */
export function createFileTokenStore(options: { dir: string; logger: Logger; watchDebounceMs?: number }): TokenStore {
  const files = tokenFiles(options.dir);
  const read = async (): Promise<TokenRecord[]> => (await readJson(files.tokens, fileSchema, { tokens: [] })).tokens;
  return {
    list: read,
    add: (record) =>
      update(files.tokens, async () => {
        const tokens = await read();
        if (tokens.some((token) => token.name === record.name)) return false;
        await writeSecret(files.tokens, { tokens: [...tokens, record] });
        return true;
      }),
    remove: (name) =>
      update(files.tokens, async () => {
        const tokens = await read();
        const kept = tokens.filter((token) => token.name !== name);
        if (kept.length === tokens.length) return false;
        await writeSecret(files.tokens, { tokens: kept });
        return true;
      }),
    lastUsed: () => readJson(files.usage, usageSchema, {}),
    markUsed: (name, at) =>
      // Merged by the latest: two servers on one folder each record their own uses.
      update(files.usage, async () => {
        const usage = await readJson(files.usage, usageSchema, {}).catch((): Record<string, string> => ({}));
        if ((usage[name] ?? '') >= at) return;
        await writeSecret(files.usage, { ...usage, [name]: at });
      }),
    async watch(onChange) {
      await mkdir(files.dir, { recursive: true, mode: 0o700 });
      let debounce: NodeJS.Timeout | undefined;
      const watcher = watch(files.dir, (_event, filename) => {
        if (filename !== path.basename(files.tokens)) return;
        clearTimeout(debounce);
        debounce = setTimeout(onChange, options.watchDebounceMs ?? 20);
      });
      watcher.on('error', (error) => options.logger.error({ err: error }, 'token file watcher failed'));
      return async () => {
        clearTimeout(debounce);
        watcher.close();
      };
    },
    close: async () => undefined,
  };
}

const KEYS = { tokens: 'killswitch:tokens', usage: 'killswitch:tokens:used', changed: 'killswitch:tokens:changed' };

/**
 * Tokens in a Redis hash (name -> record), shared by every instance; a change is published, so
 * that a revocation reaches every instance at once. `subscriber` is made on the first watch.
 */
export function createRedisTokenStore(options: { redis: Redis; logger: Logger }): TokenStore {
  const { redis } = options;
  const parse = (text: string) => recordSchema.parse(JSON.parse(text));
  return {
    async list() {
      return Object.values(await redis.hgetall(KEYS.tokens)).map(parse);
    },
    async add(record) {
      const added = (await redis.hsetnx(KEYS.tokens, record.name, JSON.stringify(record))) === 1;
      if (added) await redis.publish(KEYS.changed, record.name);
      return added;
    },
    async remove(name) {
      const removed = (await redis.hdel(KEYS.tokens, name)) === 1;
      if (removed) await redis.publish(KEYS.changed, name);
      return removed;
    },
    lastUsed: () => redis.hgetall(KEYS.usage),
    async markUsed(name, at) {
      await redis.hset(KEYS.usage, name, at);
    },
    async watch(onChange) {
      // Its own connection (a subscriber can do nothing else), queueing its subscription until
      // Redis answers.
      const subscriber = redis.duplicate({ lazyConnect: false, enableOfflineQueue: true });
      // Tokens loaded again whenever either connection is (back) up: changes published while
      // Redis was away were missed.
      redis.on('ready', onChange);
      subscriber.on('error', (error) => options.logger.debug({ err: error }, 'token subscriber error'));
      subscriber.on('message', (channel) => {
        if (channel === KEYS.changed) onChange();
      });
      subscriber.on('ready', onChange);
      // Not awaited: Redis may be away at start; ioredis subscribes when it connects, and again
      // after every reconnect.
      subscriber
        .subscribe(KEYS.changed)
        .catch((error: unknown) => options.logger.debug({ err: error }, 'token subscribe failed'));
      return async () => {
        redis.off('ready', onChange);
        subscriber.disconnect();
      };
    },
    close: async () => undefined,
  };
}
