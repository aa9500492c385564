import type { Redis } from 'ioredis';

/** Who drives a running ramp: exactly one instance at a time. */
export interface DriverLease {
  /** Takes or renews the lease; true while this instance holds it. */
  hold(): Promise<boolean>;
  /** Gives it back (a graceful stop): another instance takes over at once. */
  release(): Promise<void>;
}

/** Without Redis, one process serves the flags: it drives. */
export const processLease: DriverLease = {
  hold: () => Promise.resolve(true),
  release: () => Promise.resolve(),
};

export const LEASE_KEY = 'killswitch:ramp-driver';

const HOLD = `
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

type RedisWithLease = Redis & {
  holdLease(key: string, me: string, ttlMs: number): Promise<number>;
  releaseLease(key: string, me: string): Promise<number>;
};

/**
 * Several instances: a lease in Redis, renewed at every tick of the driver and lasting `ttlMs`.
 * An instance that dies stops renewing; another holds it within `ttlMs` and a tick. An instance
 * that merely stalls past it may write once more, but every ramp write is a compare-and-set on
 * the flag's version and the ramp's revision: a stage is never written twice.
 */
export class RedisLease implements DriverLease {
  private readonly redis: RedisWithLease;

  /** `redis` is shared with the ramp's other parts: the caller closes it. */
  constructor(
    redis: Redis,
    private readonly me: string,
    private readonly ttlMs: number,
  ) {
    this.redis = redis as RedisWithLease;
    this.redis.defineCommand('holdLease', { numberOfKeys: 1, lua: HOLD });
    this.redis.defineCommand('releaseLease', { numberOfKeys: 1, lua: RELEASE });
  }

  async hold(): Promise<boolean> {
    try {
      return (await this.redis.holdLease(LEASE_KEY, this.me, this.ttlMs)) === 1;
    } catch {
      // Redis away: nobody can write the flags either; the next tick asks again.
      return false;
    }
  }

  async release(): Promise<void> {
    await this.redis.releaseLease(LEASE_KEY, this.me).catch(() => undefined);
  }
}
