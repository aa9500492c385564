import type { Redis } from 'ioredis';
import { ServiceUnavailableError } from '../errors.js';
import { connectWithin, createRedisClient } from '../redis.js';
import type { Logger } from '../observability/logger.js';
import { AUDIT_CAPACITY, type AuditEntry } from './audit.js';
import type { BackendEvent, BackendSeed, BackendSnapshot, FlagBackend, FlagWrite, WriteOutcome } from './backend.js';
import type { Actor, FlagDefinition, FlagdDocument } from './types.js';

const PREFIX = 'killswitch:';
export const REDIS_KEYS = {
  flags: `${PREFIX}flags`, // hash: flag key -> flagd definition (JSON)
  versions: `${PREFIX}versions`, // hash: flag key -> version
  audit: `${PREFIX}audit`, // list, newest first, capped
  channel: `${PREFIX}changes`, // pub/sub: one audit entry (JSON) per applied change
};

/**
 * Compare-and-set of one flag, its audit line and the announcement, atomically. Returns
 * { 1, version } when written, { 0, current, definition } on a version conflict, { -1 } for a
 * flag Redis does not have.
 */
const WRITE_FLAG = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {-1} end
local current = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if tonumber(ARGV[2]) ~= current then return {0, current, redis.call('HGET', KEYS[1], ARGV[1])} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], current + 1)
redis.call('LPUSH', KEYS[3], ARGV[4])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
redis.call('PUBLISH', ARGV[5], ARGV[4])
return {1, current + 1}
`;

/** Seeds an empty Redis, once: when several instances start together, one wins and the others find it seeded. */
const SEED_IF_EMPTY = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local data = cjson.decode(ARGV[1])
for key, definition in pairs(data.flags) do
  redis.call('HSET', KEYS[1], key, definition)
  redis.call('HSET', KEYS[2], key, data.versions[key])
end
for _, entry in ipairs(data.audit) do redis.call('RPUSH', KEYS[3], entry) end
return 1
`;

type RedisWithScripts = Redis & {
  writeFlag(
    flags: string,
    versions: string,
    audit: string,
    key: string,
    expected: number,
    definition: string,
    entry: string,
    channel: string,
    cap: number,
  ): Promise<[number, number?, string?]>;
  seedIfEmpty(flags: string, versions: string, audit: string, data: string): Promise<number>;
};

export interface RedisBackendOptions {
  url: string;
  logger: Logger;
  /** How long start-up waits for Redis before serving the safe defaults. */
  connectTimeoutMs: number;
}

const RELOAD: Actor = { source: 'system', name: 'reload from Redis' };

/** A seed as Redis keeps it: definitions as JSON, plain version numbers, the audit newest first. */
function asRedisSeed(seed: BackendSeed) {
  return {
    flags: Object.fromEntries(
      Object.entries(seed.document.flags).map(([key, definition]) => [key, JSON.stringify(definition)]),
    ),
    versions: Object.fromEntries(Object.entries(seed.versions).map(([key, stamp]) => [key, stamp.version])),
    audit: seed.audit
      .slice()
      .reverse()
      .map((entry) => JSON.stringify(entry)),
  };
}

/**
 * Flags in Redis, for several instances. A write is a compare-and-set on the flag's version in one
 * Lua script that also appends the audit line and publishes it; each instance hears of the others'
 * writes on the channel. While Redis is down commands fail at once (a write answers 503, never a
 * silent success); when it is back, the repository loads it again. Redis found empty is reported
 * as such, and the repository seeds it (one seed wins when several instances try at once).
 */
export class RedisBackend implements FlagBackend {
  readonly kind = 'redis' as const;
  /** The write's script records the version and the audit line itself. */
  readonly keepsHistory = true;
  private readonly redis: RedisWithScripts;
  private readonly subscriberClient: Redis;
  private listener: ((event: BackendEvent) => void) | undefined;
  private connecting: Promise<boolean> | undefined;
  private connected = false;
  private closed = false;
  private readonly log: Logger;

  constructor(private readonly options: RedisBackendOptions) {
    this.log = options.logger.child({ component: 'redis-flags' });
    // Commands fail at once while disconnected: a write must answer 503, not wait in a queue.
    this.redis = createRedisClient(options.url, { logger: this.log, name: 'flags' }) as RedisWithScripts;
    this.redis.defineCommand('writeFlag', { numberOfKeys: 3, lua: WRITE_FLAG });
    this.redis.defineCommand('seedIfEmpty', { numberOfKeys: 3, lua: SEED_IF_EMPTY });
    this.subscriberClient = createRedisClient(options.url, {
      logger: this.log,
      name: 'flags subscriber',
      subscriber: true,
    });
    this.redis.on('close', () => {
      if (this.connected && !this.closed) {
        this.log.warn('Redis connection lost: serving the last known flags; writes answer 503');
        this.listener?.({
          type: 'unreachable',
          problem: 'Redis unreachable: serving the last known flags; writes answer 503',
        });
      }
      this.connected = false;
    });
    this.redis.on('ready', () => {
      this.connected = true;
      // Back after an outage (or first up after a start that gave up waiting): load again.
      if (!this.connecting) this.listener?.({ type: 'reload' });
    });
    this.subscriberClient.on('message', (_channel, message) => {
      try {
        const entry = JSON.parse(message) as AuditEntry;
        if (typeof entry.key !== 'string' || typeof entry.version !== 'number') throw new Error('not a change message');
        this.listener?.({ type: 'change', entry: { ...entry, after: entry.after ?? null } });
      } catch (error) {
        this.log.error({ err: error }, 'ignored a malformed change message');
      }
    });
  }

  subscribe(listener: (event: BackendEvent) => void): () => void {
    this.listener = listener;
    void this.subscriberClient.connect().catch(() => undefined);
    void this.subscriberClient.subscribe(REDIS_KEYS.channel).catch(() => undefined);
    return () => {
      this.listener = undefined;
    };
  }

  /** Connects at the first load (waiting at most connectTimeoutMs) and reads Redis whole; undefined when it holds no flags. */
  async load(): Promise<BackendSnapshot | undefined> {
    if (!(await this.connect())) {
      throw new Error(`Redis unreachable since start-up (no answer within ${this.options.connectTimeoutMs} ms)`);
    }
    let flags: Record<string, string>;
    let versions: Record<string, string>;
    let audit: string[];
    try {
      [flags, versions, audit] = await Promise.all([
        this.redis.hgetall(REDIS_KEYS.flags),
        this.redis.hgetall(REDIS_KEYS.versions),
        this.redis.lrange(REDIS_KEYS.audit, 0, AUDIT_CAPACITY - 1),
      ]);
    } catch (error) {
      throw new Error(`Redis failed while loading the flags (${(error as Error).message})`, { cause: error });
    }
    if (Object.keys(flags).length === 0) return undefined;
    const document: FlagdDocument = { flags: {} };
    const table: Record<string, number> = {};
    for (const [key, json] of Object.entries(flags)) {
      // Taken as written: a flag the engine cannot serve answers its safe default, and says why.
      try {
        document.flags[key] = JSON.parse(json) as FlagDefinition;
        table[key] = Number(versions[key] ?? 1);
      } catch (error) {
        this.log.error(
          { key, reason: (error as Error).message },
          'a flag in Redis is not JSON: it serves its safe default',
        );
      }
    }
    const entries = audit.flatMap((line) => {
      try {
        return [JSON.parse(line) as AuditEntry];
      } catch {
        return [];
      }
    });
    return { document, actor: RELOAD, versions: table, audit: entries };
  }

  async compareAndSet(write: FlagWrite): Promise<WriteOutcome> {
    const [outcome, version, definition] = await this.command(() =>
      this.redis.writeFlag(
        REDIS_KEYS.flags,
        REDIS_KEYS.versions,
        REDIS_KEYS.audit,
        write.key,
        write.expected,
        JSON.stringify(write.entry.after),
        JSON.stringify(write.entry),
        REDIS_KEYS.channel,
        AUDIT_CAPACITY,
      ),
    );
    if (outcome === 1) return { outcome: 'written', durable: Promise.resolve() };
    if (outcome === -1 || definition === undefined) return { outcome: 'conflict', current: undefined };
    return {
      outcome: 'conflict',
      current: { version: version!, definition: JSON.parse(definition) as FlagDefinition },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.redis.disconnect();
    this.subscriberClient.disconnect();
  }

  /** The first connection, bounded; later ones are ioredis's own reconnects. */
  private connect(): Promise<boolean> {
    if (this.connected) return Promise.resolve(true);
    this.connecting ??= (async () => {
      await connectWithin(this.redis, this.options.connectTimeoutMs);
      if (!this.connected) {
        this.log.warn(
          `Redis did not answer within ${this.options.connectTimeoutMs} ms: serving the safe defaults (kill switch killed) until it does; /readyz answers 503`,
        );
      }
      return this.connected;
    })().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /** A Redis command; any failure (Redis down, a lost connection) becomes a clear 503. */
  private async command<T>(run: () => Promise<T>): Promise<T> {
    if (!this.connected)
      throw new ServiceUnavailableError('Redis is unavailable: the flag was not changed. Try again when it is back.');
    try {
      return await run();
    } catch (error) {
      throw new ServiceUnavailableError(
        `Redis failed (${(error as Error).message}): the flag may not have been changed; read it again.`,
      );
    }
  }

  async seed(seed: BackendSeed): Promise<void> {
    await this.command(() =>
      this.redis.seedIfEmpty(
        REDIS_KEYS.flags,
        REDIS_KEYS.versions,
        REDIS_KEYS.audit,
        JSON.stringify(asRedisSeed(seed)),
      ),
    );
  }

  /** Nothing to do: the write's script has recorded the version and the audit line already. */
  recordChanges(): void {}
}
