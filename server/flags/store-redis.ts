import { isDeepStrictEqual } from 'node:util';
import { Redis } from 'ioredis';
import { NotFoundError, PreconditionFailedError, ServiceUnavailableError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { toAuditEntry, type AuditEntry, type AuditReader } from './audit.js';
import { defaultFlagDocument } from './catalog.js';
import { SerialQueue } from '../concurrency/serial-queue.js';
import { flagRecord, flagRecords, type ChangeListener, type FlagStore, type FlagUpdater, type UpdateOptions } from './store.js';
import type { Actor, FlagChange, FlagDefinition, FlagdDocument, FlagRecord } from './types.js';
import { validateFlagDefinition } from './validate.js';

const PREFIX = 'killswitch:';
export const REDIS_KEYS = {
  flags: `${PREFIX}flags`, // hash: flag key -> flagd definition (JSON)
  versions: `${PREFIX}versions`, // hash: flag key -> version
  audit: `${PREFIX}audit`, // list, newest first, capped
  channel: `${PREFIX}changes`, // pub/sub: one audit entry (JSON) per applied change
};
const AUDIT_CAP = 500;

/**
 * Compare-and-set of one flag, its audit line and the announcement, atomically. Returns
 * { 1, version } when written, { 0, current } on a version conflict, { -1, 0 } for an unknown flag.
 */
const WRITE_FLAG = `
local current = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {-1, 0} end
if tonumber(ARGV[2]) ~= current then return {0, current} end
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
  writeFlag(flags: string, versions: string, audit: string, key: string, expected: number, definition: string, entry: string, channel: string, cap: number): Promise<[number, number]>;
  seedIfEmpty(flags: string, versions: string, audit: string, data: string): Promise<number>;
};

export interface RedisFlagStoreOptions {
  url: string;
  logger: Logger;
  /** How long start-up waits for Redis before serving the safe defaults. */
  connectTimeoutMs: number;
}

/**
 * Flags in Redis, for several instances. Every instance keeps the last known document in memory
 * and serves from it, so an outage of Redis changes nothing a viewer sees. Writes are a
 * compare-and-set on the flag's version in one Lua script that also appends the audit and
 * publishes the change; every instance (the writer too) applies a change once, by version.
 * While Redis is down writes answer 503 (never a silent success); when it is back each instance
 * reloads, compares versions and announces only the real changes. Redis found empty is seeded,
 * once: from the defaults at first start, or, if it lost its data, from this instance's last
 * known flags, so that a kill is never undone by a Redis restart.
 */
export class RedisFlagStore implements FlagStore {
  readonly kind = 'redis' as const;
  private readonly redis: RedisWithScripts;
  private readonly subscriber: Redis;
  private doc: FlagdDocument = { flags: {} };
  private versions: Record<string, number> = {};
  private auditEntries: AuditEntry[] = [];
  private loaded = false;
  private connected = false;
  private closed = false;
  private readonly queue = new SerialQueue();
  private readonly listeners = new Set<ChangeListener>();
  private readonly log: Logger;

  constructor(private readonly options: RedisFlagStoreOptions) {
    this.log = options.logger.child({ component: 'redis-store' });
    const common = {
      lazyConnect: true,
      connectTimeout: Math.max(500, Math.min(options.connectTimeoutMs, 5000)),
      // Backoff between reconnection attempts: 100 ms, 200 ms, ... up to 2 s, forever.
      retryStrategy: (times: number) => Math.min(times * 100, 2000),
    };
    // Commands fail at once while disconnected: a write must answer 503, not wait in a queue.
    this.redis = new Redis(options.url, { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 1 }) as RedisWithScripts;
    this.redis.defineCommand('writeFlag', { numberOfKeys: 3, lua: WRITE_FLAG });
    this.redis.defineCommand('seedIfEmpty', { numberOfKeys: 3, lua: SEED_IF_EMPTY });
    this.subscriber = new Redis(options.url, common);
    this.redis.on('error', (error) => this.log.debug({ err: error }, 'redis error'));
    this.subscriber.on('error', (error) => this.log.debug({ err: error }, 'redis subscriber error'));
    this.redis.on('close', () => {
      if (this.connected && !this.closed) this.log.warn('Redis connection lost: serving the last known flags; writes answer 503');
      this.connected = false;
    });
    this.redis.on('ready', () => {
      this.connected = true;
      void this.queue.run(() => this.resync()).catch((error: unknown) => this.log.error({ err: error }, 'could not reload flags from Redis'));
    });
    this.subscriber.on('message', (_channel, message) => {
      void this.queue.run(async () => this.applyRemote(message));
    });
  }

  /** The audit, read from Redis and kept current from the change channel. */
  readonly audit: AuditReader = {
    recent: (limit = 50) => this.auditEntries.slice(0, limit),
  };

  async start(): Promise<void> {
    void this.subscriber.connect().catch(() => undefined);
    void this.subscriber.subscribe(REDIS_KEYS.channel).catch(() => undefined);
    // Not events.once(): it rejects on the 'error' events an unreachable Redis emits.
    const ready = new Promise<void>((resolve) => this.redis.once('ready', () => resolve()));
    void this.redis.connect().catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise((resolve) => (timer = setTimeout(resolve, this.options.connectTimeoutMs)));
    await Promise.race([ready, bound]);
    clearTimeout(timer);
    // The first resync (on 'ready') is queued: wait for it, so the store starts with the flags.
    await this.queue.run(async () => undefined);
    if (!this.loaded) {
      this.log.warn(`Redis did not answer within ${this.options.connectTimeoutMs} ms: serving the safe defaults (kill switch killed) until it does; /readyz answers 503`);
    }
  }

  status() {
    if (!this.loaded) return { healthy: false, problem: 'Redis unreachable since start-up' };
    if (!this.connected) return { healthy: true, problem: 'Redis unreachable: serving the last known flags; writes answer 503' };
    return { healthy: true };
  }

  document(): FlagdDocument {
    return this.doc;
  }

  list(): FlagRecord[] {
    return flagRecords(this.doc, (key) => this.versions[key]);
  }

  get(key: string): FlagRecord | undefined {
    return flagRecord(this.doc, key, this.versions[key]);
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  update(key: string, updater: FlagUpdater, options: UpdateOptions): Promise<FlagRecord> {
    return this.queue.run(async () => {
      // Another instance may write between our read and our write: retry the read-modify-write
      // (without If-Match the last write wins; with it, a conflict is the caller's 412).
      for (let attempt = 0; attempt < 20; attempt++) {
        const [definitionJson, versionText] = await this.command(() => Promise.all([this.redis.hget(REDIS_KEYS.flags, key), this.redis.hget(REDIS_KEYS.versions, key)]));
        if (definitionJson === null) throw new NotFoundError(`Unknown flag "${key}".`);
        const version = Number(versionText ?? 0);
        if (options.ifMatch !== undefined && options.ifMatch !== version) {
          throw new PreconditionFailedError(`Flag "${key}" is at version ${version}, not ${options.ifMatch}: someone changed it first. Read it again and retry.`, { currentVersion: version });
        }
        const current = JSON.parse(definitionJson) as FlagDefinition;
        const next = updater(current);
        if (isDeepStrictEqual(next, current)) return { key, version, definition: current };
        const change: FlagChange = { key, version: version + 1, before: current, after: next, actor: options.actor, at: new Date().toISOString() };
        const entry = toAuditEntry(change);
        const [outcome, newVersion] = await this.command(() =>
          this.redis.writeFlag(REDIS_KEYS.flags, REDIS_KEYS.versions, REDIS_KEYS.audit, key, version, JSON.stringify(next), JSON.stringify(entry), REDIS_KEYS.channel, AUDIT_CAP),
        );
        if (outcome === -1) throw new NotFoundError(`Unknown flag "${key}".`);
        if (outcome === 1) {
          this.apply(change, entry);
          return { key, version: newVersion, definition: next };
        }
        if (options.ifMatch !== undefined) {
          throw new PreconditionFailedError(`Flag "${key}" is at version ${newVersion}, not ${options.ifMatch}: someone changed it first.`, { currentVersion: newVersion });
        }
      }
      throw new ServiceUnavailableError(`Flag "${key}" is being written by others too often; try again.`);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.queue.run(async () => undefined);
    this.redis.disconnect();
    this.subscriber.disconnect();
  }

  /** A Redis command; any failure (Redis down, a lost connection) becomes a clear 503. */
  private async command<T>(run: () => Promise<T>): Promise<T> {
    if (!this.connected) throw new ServiceUnavailableError('Redis is unavailable: the flag was not changed. Try again when it is back.');
    try {
      return await run();
    } catch (error) {
      throw new ServiceUnavailableError(`Redis failed (${(error as Error).message}): the flag may not have been changed; read it again.`);
    }
  }

  /** Applies one change if it is newer than what this instance has, and announces it. */
  private apply(change: FlagChange, entry: AuditEntry): void {
    if (change.version <= (this.versions[change.key] ?? 0)) return;
    const flags = { ...this.doc.flags };
    if (change.after) flags[change.key] = change.after;
    else delete flags[change.key];
    this.doc = { ...this.doc, flags };
    this.versions = { ...this.versions, [change.key]: change.version };
    this.auditEntries = [entry, ...this.auditEntries].slice(0, AUDIT_CAP);
    this.announce([change]);
  }

  private applyRemote(message: string): void {
    try {
      const entry = JSON.parse(message) as AuditEntry;
      const after = entry.after ? validateFlagDefinition(entry.key, entry.after) : undefined;
      this.apply({ key: entry.key, version: entry.version, before: entry.before ?? undefined, after, actor: entry.actor, at: entry.at }, entry);
    } catch (error) {
      this.log.error({ err: error }, 'ignored a malformed change message');
    }
  }

  /** On (re)connect: seed Redis if it is empty, then load it and announce what really changed. */
  private async resync(): Promise<void> {
    const seedFrom = this.loaded ? this.snapshotForSeed() : this.defaultsForSeed();
    const seeded = await this.redis.seedIfEmpty(REDIS_KEYS.flags, REDIS_KEYS.versions, REDIS_KEYS.audit, JSON.stringify(seedFrom));
    if (seeded === 1) {
      this.log[this.loaded ? 'warn' : 'info'](this.loaded ? 'Redis came back empty: re-seeded it from this instance\'s last known flags' : 'Redis was empty: seeded it with the default flags');
    }
    const [flags, versions, audit] = await Promise.all([
      this.redis.hgetall(REDIS_KEYS.flags),
      this.redis.hgetall(REDIS_KEYS.versions),
      this.redis.lrange(REDIS_KEYS.audit, 0, AUDIT_CAP - 1),
    ]);
    const document: FlagdDocument = { ...this.doc, flags: {} };
    const table: Record<string, number> = {};
    for (const [key, json] of Object.entries(flags)) {
      try {
        document.flags[key] = validateFlagDefinition(key, JSON.parse(json));
        table[key] = Number(versions[key] ?? 1);
      } catch (error) {
        this.log.error({ key, reason: (error as Error).message }, 'a flag in Redis is not valid: it serves its safe default');
      }
    }
    const actor: Actor = { source: 'system', name: 'reload from Redis' };
    const at = new Date().toISOString();
    const changes: FlagChange[] = [];
    for (const key of new Set([...Object.keys(this.doc.flags), ...Object.keys(document.flags)])) {
      const before = this.doc.flags[key];
      const after = document.flags[key];
      if ((this.versions[key] ?? 0) === (table[key] ?? 0) && isDeepStrictEqual(before, after)) continue;
      changes.push({ key, version: table[key] ?? (this.versions[key] ?? 0) + 1, before, after, actor, at });
    }
    this.doc = document;
    this.versions = table;
    this.auditEntries = audit.flatMap((line) => {
      try {
        return [JSON.parse(line) as AuditEntry];
      } catch {
        return [];
      }
    });
    const first = !this.loaded;
    this.loaded = true;
    this.log.info({ flags: Object.keys(document.flags).length, changed: changes.length }, first ? 'flags loaded from Redis' : 'reconnected to Redis: flags reloaded');
    if (changes.length > 0) this.announce(changes);
  }

  private defaultsForSeed() {
    const defaults = defaultFlagDocument();
    const at = new Date().toISOString();
    const actor: Actor = { source: 'system', name: 'default flags' };
    return {
      flags: Object.fromEntries(Object.entries(defaults.flags).map(([key, definition]) => [key, JSON.stringify(definition)])),
      versions: Object.fromEntries(Object.keys(defaults.flags).map((key) => [key, 1])),
      audit: Object.entries(defaults.flags).map(([key, definition]) => JSON.stringify(toAuditEntry({ key, version: 1, before: undefined, after: definition, actor, at }))),
    };
  }

  private snapshotForSeed() {
    return {
      flags: Object.fromEntries(Object.entries(this.doc.flags).map(([key, definition]) => [key, JSON.stringify(definition)])),
      versions: this.versions,
      audit: this.auditEntries.map((entry) => JSON.stringify(entry)),
    };
  }

  private announce(changes: FlagChange[]): void {
    for (const listener of this.listeners) {
      try {
        listener(changes);
      } catch (error) {
        this.log.error({ err: error }, 'a flag change listener failed');
      }
    }
  }
}
