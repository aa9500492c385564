import type { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import { createRedisClient } from '../redis.js';
import type { RampRecord, RampStore } from './store.js';

const PREFIX = 'killswitch:';
export const RAMP_KEYS = {
  ramp: `${PREFIX}ramp`, // string: the running or last ramp (JSON)
  channel: `${PREFIX}ramp-changes`, // pub/sub: a save happened (its revision)
};

/** Sets the ramp if the stored one is still at ARGV[2]'s revision, and announces it. */
const SAVE_RAMP = `
local stored = redis.call('GET', KEYS[1])
local revision = 0
if stored then revision = cjson.decode(stored).revision end
if revision ~= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 1
`;

type RedisWithSave = Redis & {
  saveRamp(key: string, channel: string, record: string, expected: number, revision: number): Promise<number>;
};

/** The ramp in Redis, beside the flags: one key, saved by compare-and-set, each save announced. */
export class RedisRampStore implements RampStore {
  readonly kind = 'redis';
  private readonly redis: RedisWithSave;
  private readonly subscriber: Redis;
  private readonly listeners = new Set<() => void>();

  /** `redis` is shared with the ramp's other parts (the caller closes it); the subscriber is this store's. */
  constructor(redis: Redis, url: string, logger: Logger) {
    this.redis = redis as RedisWithSave;
    this.redis.defineCommand('saveRamp', { numberOfKeys: 2, lua: SAVE_RAMP });
    this.subscriber = createRedisClient(url, { logger, name: 'ramp subscriber', subscriber: true, lazy: false });
    void this.subscriber.subscribe(RAMP_KEYS.channel).catch(() => undefined);
    this.subscriber.on('message', () => this.listeners.forEach((listener) => listener()));
    // Saves missed while away: read again once back.
    this.subscriber.on('ready', () => this.listeners.forEach((listener) => listener()));
  }

  async load(): Promise<RampRecord | undefined> {
    const stored = await this.redis.get(RAMP_KEYS.ramp);
    return stored ? (JSON.parse(stored) as RampRecord) : undefined;
  }

  async save(record: RampRecord, expected: number): Promise<boolean> {
    const saved = await this.redis.saveRamp(
      RAMP_KEYS.ramp,
      RAMP_KEYS.channel,
      JSON.stringify(record),
      expected,
      record.revision,
    );
    return saved === 1;
  }

  onOutsideChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.subscriber.disconnect();
  }
}
