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
  /** Stops, giving back what is not in use. */
  close(): void | Promise<void>;
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
 * that no instance's clock matters. Leases live in a hash (instance -> "held wanted expiresAt
 * inFlight"); expired ones (an instance that died) are dropped first. A slice is what the instance
 * wants, within what the others hold; when the instances together want more than the cap, each
 * gets its part of the cap in proportion to what it wants, so that a busy instance cannot keep the
 * whole cap from one that has just become busy. What is recorded as held is never less than what
 * the instance has in flight or may still start until this answer reaches it (its slice so far):
 * a slice shrinks in Redis only once the instance has applied it. After an outage, instances were
 * spending a fallback share, and their calls in flight are in no lease (a restart may have lost
 * them all): from the first ask of one that is back, for two leases' lengths, no one gets more than
 * a share of the instances seen. Every ask is also a heartbeat in the instances' set.
 * Returns { slice, calls in flight across the cluster, live instances, 1 when the cap is contended }.
 */
const LEASE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me, want, inflight, mayuse = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local cap, ttl, seen = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
redis.call('ZADD', KEYS[2], now + ttl, me)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local live = redis.call('ZCARD', KEYS[2])
-- An instance back from its fallback share (seen > 0: the instances it saw before) opens a rebuild:
-- the shares are reckoned by the most instances any of them saw, until every one has leased again.
if seen > 0 then
  local open = redis.call('HMGET', KEYS[3], 'until', 'seen')
  redis.call('HSET', KEYS[3], 'until', math.max(now + 2 * ttl, tonumber(open[1]) or 0), 'seen', math.max(seen, tonumber(open[2]) or 0))
end
local rebuild = redis.call('HMGET', KEYS[3], 'until', 'seen')
local rebuildUntil, before = tonumber(rebuild[1]) or 0, tonumber(rebuild[2]) or 0
local others, othersInFlight, totalWant = 0, 0, want
local wants = { { id = me, want = want } }
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local id = entries[i]
  local held, wanted, expires, calls = string.match(entries[i + 1], '^(%d+) (%d+) (%d+) (%d+)$')
  if not held or tonumber(expires) <= now then
    redis.call('HDEL', KEYS[1], id)
  elseif id ~= me then
    others = others + tonumber(held)
    othersInFlight = othersInFlight + tonumber(calls)
    totalWant = totalWant + tonumber(wanted)
    table.insert(wants, { id = id, want = tonumber(wanted) })
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
if now < rebuildUntil then slice = math.min(slice, math.max(1, math.floor(cap / math.max(before, live, 1)))) end
local held = math.max(slice, inflight, mayuse)
if held == 0 and want == 0 then
  redis.call('HDEL', KEYS[1], me)
else
  redis.call('HSET', KEYS[1], me, held .. ' ' .. want .. ' ' .. (now + ttl) .. ' ' .. inflight)
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl * 10) end
return { slice, othersInFlight + inflight, live, contended and 1 or 0 }
`;

type LeasingRedis = Redis & {
  leaseBudget(
    leases: string,
    instances: string,
    rebuild: string,
    instance: string,
    want: number,
    inFlight: number,
    mayUse: number,
    cap: number,
    ttlMs: number,
    seenBeforeOutage: number,
  ): Promise<[number, number, number, number]>;
};

export const BUDGET_KEYS = {
  leases: (service: UpstreamService) => `killswitch:budget:${service}:leases`,
  instances: 'killswitch:budget:instances',
  rebuild: (service: UpstreamService) => `killswitch:budget:${service}:rebuild`,
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
 * which also gives back what is no longer wanted (an instance with nothing to do holds nothing).
 *
 * A lease that has run out while Redis answers (this process stalled) allows no new call until it
 * is renewed, at once. When Redis cannot be reached, the slice is this instance's share of the
 * instances last seen, so that all of them, cut off together, stay within the cap (none before it
 * ever reached Redis); when Redis is back, the next ask rebuilds it.
 */
export class ClusterBudget implements Budget {
  readonly cap: number;
  private granted = 0;
  private contended = false;
  private closed = false;
  /** Whether the last ask was answered (undefined before the first ask has ended). */
  private reachable: boolean | undefined;
  /** Redis was lost after a lease: the next lease answered opens a rebuild (see LEASE). */
  private returning = false;
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
    if (!('leaseBudget' in options.redis)) options.redis.defineCommand('leaseBudget', { numberOfKeys: 3, lua: LEASE });
    this.redis = options.redis as LeasingRedis;
    this.renewLater();
    options.redis.on('ready', this.onReady);
    options.redis.on('close', this.onClose);
    if (options.redis.status === 'ready') void this.ask();
  }

  // At once when Redis is ready (at the start, and back after an outage), not at the next renewal:
  // until then this instance holds no more than a fallback share, and a page's calls would wait.
  private readonly onReady = () => void this.ask();

  // Redis gone (a restart loses the leases): the last one is not trusted a moment longer.
  private readonly onClose = () => {
    if (this.reachable !== true) return;
    this.reachable = false;
    this.returning = true;
    this.trustedUntil = Number.NEGATIVE_INFINITY;
    this.changed();
  };

  held(): number {
    if (this.now() <= this.trustedUntil) return this.granted;
    // Lapsed while Redis answers, or not asked yet: no new call until the lease is (re)newed.
    return this.reachable === false ? this.fallbackShare() : 0;
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

  /** Stops renewing, and gives back all but the calls still in flight (their lease runs out by itself). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.options.redis.off('ready', this.onReady);
    this.options.redis.off('close', this.onClose);
    await this.asking;
    this.wanted = this.inFlight;
    await this.lease(this.inFlight);
  }

  /**
   * Never more than a share of the cap: every instance last seen holding the same, rounded down so
   * that together they stay within it (none, with fewer calls in the cap than instances). None
   * before Redis was ever reached: that instance cannot know who holds what (and its flags, read
   * from Redis too, are their safe defaults meanwhile: killed).
   */
  private fallbackShare(): number {
    return this.instancesSeen === 0 ? 0 : Math.floor(this.cap / this.instancesSeen);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  /** The next renewal: sooner while the instances compete for the cap; at once to tell Redis of a slice given up. */
  private renewLater(soon = false): void {
    clearTimeout(this.timer);
    if (this.closed) return;
    const every = soon
      ? 0
      : this.contended
        ? (this.options.renewContendedEveryMs ?? 100)
        : (this.options.renewEveryMs ?? 1000);
    this.timer = setTimeout(() => void this.ask(), every);
    this.timer.unref();
  }

  /** One ask at a time; one more after it when something asked meanwhile (more demand, a slot to give back). */
  private ask(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.asking) {
      this.askAgain = true;
      return this.asking;
    }
    this.asking = this.lease(Math.max(this.inFlight, this.held())).finally(() => {
      this.asking = undefined;
      if (!this.askAgain) return;
      this.askAgain = false;
      void this.ask();
    });
    return this.asking;
  }

  /** `mayUse`: what this instance may still start until the answer reaches it (recorded as held). */
  private async lease(mayUse: number): Promise<void> {
    const sentAt = this.now();
    this.askedFor = this.wanted;
    let shrunk = false;
    try {
      const { service, instance } = this.options;
      const [slice, inUse, instances, contended] = await this.redis.leaseBudget(
        BUDGET_KEYS.leases(service),
        BUDGET_KEYS.instances,
        BUDGET_KEYS.rebuild(service),
        instance,
        this.wanted,
        this.inFlight,
        mayUse,
        this.cap,
        this.ttlMs,
        this.returning ? this.instancesSeen : 0,
      );
      this.granted = slice;
      this.contended = contended === 1;
      // Recorded as `mayUse` until now: Redis hears at once of what the next lease gives up, if
      // anything (calls still in flight past the slice are held until they end, not asked about again).
      shrunk = Math.max(slice, this.inFlight) < mayUse;
      this.clusterInUse = inUse;
      this.instancesSeen = instances;
      this.reachable = true;
      this.returning = false;
      // From when it was asked for: the lease cannot have started earlier than that in Redis.
      this.trustedUntil = sentAt + this.ttlMs - Math.min(LEASE_MARGIN_MS, this.ttlMs / 4);
    } catch (error) {
      if (this.reachable === true) this.returning = true;
      this.reachable = false;
      this.options.logger.debug(
        { err: error, service: this.options.service },
        'could not renew the third-party budget; holding no more than a share',
      );
    }
    this.renewLater(shrunk);
    // Waiting calls look again whatever the answer (a slice as before, after a lapse, lets them in).
    this.changed();
  }
}

/** How much sooner than the lease's end this instance stops trusting it: a renewal's round trip and then some. */
const LEASE_MARGIN_MS = 500;
