import type { BudgetState } from '../../protocol/wire.js';
import type { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import type { UpstreamService } from '../observability/metrics.js';

/**
 * How many calls to one service this instance may have in flight. Without Redis the whole cap is
 * this instance's; with Redis the cap is the cluster's, and this instance holds a slice of it.
 */
export interface Budget {
  readonly cap: number;
  /** The calls this instance may have in flight now. */
  held(): number;
  /** What this instance wants now: calls in flight and waiting (it asks for more, or gives back). */
  want(wanted: number, inFlight: number): void;
  /** The capacity the pacer plans with: this instance's expected part of the cap. */
  expected(): number;
  usage(inFlight: number): BudgetState;
  /** Told when `held()` may have changed. */
  onChange(listener: () => void): void;
  close(): void;
}

/** One instance, no Redis: the whole cap, always. */
export class InstanceBudget implements Budget {
  constructor(readonly cap: number) {}
  held(): number {
    return this.cap;
  }
  want(): void {}
  expected(): number {
    return this.cap;
  }
  usage(inFlight: number): BudgetState {
    return { scope: 'instance', cap: this.cap, held: this.cap, inUse: inFlight, instances: 1 };
  }
  onChange(): void {}
  close(): void {}
}

/**
 * Grants one instance its slice of a service's cap, atomically, on Redis's own clock (TIME), so
 * that no instance's clock matters. Leases live in a hash (instance -> "held wanted expiresAt");
 * expired ones (an instance that died) are dropped first. A slice is what the instance wants, within
 * what the others hold; when the instances together want more than the cap, each gets its part of
 * the cap in proportion to what it wants, so that a busy instance cannot keep the whole cap from
 * one that has just become busy. A call in flight is not taken back: the lease
 * records at least what the instance has in flight (the others see it in use), while the instance
 * starts no new call until it is under its slice. Every ask is also a heartbeat in the instances'
 * set, whose size is the share to fall back to without Redis.
 * Returns { slice, held across the cluster, live instances, 1 when the cap is contended }.
 */
const LEASE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me, want, inflight, cap, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZADD', KEYS[2], now + ttl, me)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local others, totalWant = 0, want
local wants = { { id = me, want = want } }
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local id = entries[i]
  local held, wanted, expires = string.match(entries[i + 1], '(%d+) (%d+) (%d+)')
  held, wanted, expires = tonumber(held), tonumber(wanted), tonumber(expires)
  if expires <= now then
    redis.call('HDEL', KEYS[1], id)
  elseif id ~= me then
    others = others + held
    totalWant = totalWant + wanted
    table.insert(wants, { id = id, want = wanted })
  end
end
local contended = totalWant > cap
local slice = math.max(0, math.min(want, cap - others))
if contended then
  -- Each instance's part of the cap in proportion to what it wants, whole calls that add up to the
  -- cap (largest remainders first, then by name): every instance reckons the same parts.
  local given = 0
  for _, w in ipairs(wants) do
    local exact = cap * w.want / totalWant
    w.part = math.floor(exact)
    w.rest = exact - w.part
    given = given + w.part
  end
  table.sort(wants, function(x, y) if x.rest ~= y.rest then return x.rest > y.rest end return x.id < y.id end)
  for i = 1, cap - given do wants[i].part = wants[i].part + 1 end
  for _, w in ipairs(wants) do if w.id == me then slice = math.min(slice, w.part) end end
end
local held = math.max(slice, inflight)
if held == 0 and want == 0 then
  redis.call('HDEL', KEYS[1], me)
else
  redis.call('HSET', KEYS[1], me, held .. ' ' .. want .. ' ' .. (now + ttl))
end
redis.call('PEXPIRE', KEYS[1], ttl * 10)
redis.call('PEXPIRE', KEYS[2], ttl * 10)
return { slice, others + held, redis.call('ZCARD', KEYS[2]), contended and 1 or 0 }
`;

type LeasingRedis = Redis & {
  leaseBudget(
    leases: string,
    instances: string,
    instance: string,
    want: number,
    inFlight: number,
    cap: number,
    ttlMs: number,
  ): Promise<[number, number, number, number]>;
};

export const BUDGET_KEYS = {
  leases: (service: UpstreamService) => `killswitch:budget:${service}:leases`,
  instances: 'killswitch:budget:instances',
};

export interface ClusterBudgetOptions {
  redis: Redis;
  service: UpstreamService;
  cap: number;
  /** This instance, as the leases name it. */
  instance: string;
  logger: Logger;
  /** This instance's part of the cluster's open pages (0 to 1): what the pacer plans a restore with. */
  share: () => number;
  /** How long a lease lasts without renewal (a dead instance's slice is free after it). */
  ttlMs?: number;
  /** How often a lease is renewed (and a slice no longer wanted given back). */
  renewEveryMs?: number;
  /** How often while the instances want more than the cap together: the slices follow the demand closely. */
  renewContendedEveryMs?: number;
  /** A monotonic clock, for when this instance must stop trusting its last lease. */
  now?: () => number;
}

/**
 * This instance's slice of a service's cap, held in Redis for a few seconds at a time. Spent
 * locally (the upstream client's slots): a call costs no Redis round trip while the slice holds,
 * and one when it must grow. Renewed every second (ten times a second while the cap is contended),
 * which also gives back what is no longer wanted (an instance with nothing to do holds nothing). When Redis cannot be reached past the lease's end,
 * the slice falls to this instance's share of the instances last seen, so that all of them together
 * stay within the cap; when Redis is back, the next ask rebuilds it.
 */
export class ClusterBudget implements Budget {
  readonly cap: number;
  private granted = 0;
  private contended = false;
  private closed = false;
  private wanted = 0;
  /** What the last ask asked for: demand beyond it asks again at once, the rest waits for the renewal. */
  private askedFor = 0;
  private inFlight = 0;
  private clusterInUse = 0;
  private instancesSeen = 0;
  private trustedUntil = Number.NEGATIVE_INFINITY;
  private asking: Promise<void> | undefined;
  private askAgain = false;
  private readonly listeners: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly redis: LeasingRedis;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(private readonly options: ClusterBudgetOptions) {
    this.cap = options.cap;
    this.ttlMs = options.ttlMs ?? 3000;
    this.now = options.now ?? (() => performance.now());
    // One client may serve both services' budgets: the script is defined on it once.
    if (!('leaseBudget' in options.redis)) options.redis.defineCommand('leaseBudget', { numberOfKeys: 2, lua: LEASE });
    this.redis = options.redis as LeasingRedis;
    this.renewLater();
    // At once when Redis is ready (at the start, and back after an outage), not at the next renewal:
    // until then this instance holds nothing, and a page's calls would wait for it.
    options.redis.on('ready', this.onReady);
    if (options.redis.status === 'ready') void this.ask();
  }

  private readonly onReady = () => void this.ask();

  held(): number {
    if (this.now() <= this.trustedUntil) return this.granted;
    // The lease may have ended in Redis: no more than this instance's share of those last seen.
    return Math.min(this.granted, this.fallbackShare());
  }

  want(wanted: number, inFlight: number): void {
    const ended = inFlight < this.inFlight;
    this.wanted = wanted;
    this.inFlight = inFlight;
    // Only new demand asks at once: when the cluster is short, asking again for the same would
    // only cost Redis a round trip per call; the renewal asks anyway. A call that ends while this
    // instance is over its part gives its slot back at once: another instance is waiting for it.
    if ((wanted > this.held() && wanted > this.askedFor) || (ended && this.contended && inFlight >= this.granted))
      void this.ask();
  }

  expected(): number {
    // Its part of the pages, or more while it holds more: the others want less than their part (an
    // instance that died, whose pages are here now before the count of them has caught up).
    return Math.max(1, this.cap * Math.min(1, Math.max(0, this.options.share())), this.held());
  }

  usage(inFlight: number): BudgetState {
    return {
      scope: 'cluster',
      cap: this.cap,
      held: this.held(),
      inUse: Math.max(this.clusterInUse, inFlight),
      instances: this.instancesSeen,
    };
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.options.redis.off('ready', this.onReady);
  }

  /** Never more than a share of the cap: every instance last seen holding the same. */
  private fallbackShare(): number {
    return Math.max(1, Math.floor(this.cap / Math.max(1, this.instancesSeen)));
  }

  /** The next renewal: sooner while the instances compete for the cap. */
  private renewLater(): void {
    clearTimeout(this.timer);
    if (this.closed) return;
    const every = this.contended ? (this.options.renewContendedEveryMs ?? 100) : (this.options.renewEveryMs ?? 1000);
    this.timer = setTimeout(() => void this.ask(), every);
    this.timer.unref();
  }

  /** One ask at a time; one more after it when demand grew meanwhile beyond what was asked for. */
  private ask(): Promise<void> {
    if (this.asking) {
      this.askAgain = true;
      return this.asking;
    }
    this.asking = this.lease().finally(() => {
      this.asking = undefined;
      if (!this.askAgain) return;
      this.askAgain = false;
      if (this.wanted > this.held() && this.wanted > this.askedFor) void this.ask();
    });
    return this.asking;
  }

  private async lease(): Promise<void> {
    const sentAt = this.now();
    const before = this.held();
    this.askedFor = this.wanted;
    try {
      const { service, instance } = this.options;
      const [slice, inUse, instances, contended] = await this.redis.leaseBudget(
        BUDGET_KEYS.leases(service),
        BUDGET_KEYS.instances,
        instance,
        this.wanted,
        this.inFlight,
        this.cap,
        this.ttlMs,
      );
      this.granted = slice;
      this.contended = contended === 1;
      this.clusterInUse = inUse;
      this.instancesSeen = instances;
      // From when it was asked for: the lease cannot have started earlier than that in Redis.
      this.trustedUntil = sentAt + this.ttlMs - LEASE_MARGIN_MS;
    } catch (error) {
      this.options.logger.debug(
        { err: error, service: this.options.service },
        'could not renew the third-party budget; holding no more than a share',
      );
    }
    this.renewLater();
    if (this.held() !== before) for (const listener of this.listeners) listener();
  }
}

/** How much sooner than the lease's end this instance stops trusting it: a renewal's round trip and then some. */
const LEASE_MARGIN_MS = 500;
