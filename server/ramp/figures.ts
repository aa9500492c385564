import type { Redis } from 'ioredis';
import type { ServiceFigures } from '../../protocol/ramp.js';
import type { Logger } from '../observability/logger.js';
import type { UpstreamClient } from '../upstream/client.js';

/**
 * The third-party calls a stage made and what became of them, by service: what the guard judges.
 * Each instance counts its own from the moment it learns of the stage (`begin`); `read` sums them
 * (this instance's alone without Redis, every instance's with it).
 */
export interface StageFigures {
  /** Starts counting `stage` here (again: nothing changes); `undefined` stops counting. */
  begin(stage: string | undefined): void;
  /** The stage's figures so far, by service, across the instances that count. */
  read(stage: string): Promise<Record<string, ServiceFigures>>;
  close(): Promise<void>;
}

const zero = (): ServiceFigures => ({ calls: 0, failed: 0, breakerOpened: 0 });

/** This instance's calls since the stage began here: its clients' counts less what they were then. */
class InstanceTally {
  private stage: string | undefined;
  private baseline = new Map<string, ServiceFigures>();

  constructor(private readonly clients: readonly UpstreamClient[]) {}

  begin(stage: string | undefined): boolean {
    if (stage === this.stage) return false;
    this.stage = stage;
    this.baseline = new Map(this.clients.map((client) => [client.service, client.outcomes()]));
    return true;
  }

  current(): string | undefined {
    return this.stage;
  }

  since(): Record<string, ServiceFigures> {
    return Object.fromEntries(
      this.clients.map((client) => {
        const now = client.outcomes();
        const then = this.baseline.get(client.service) ?? zero();
        return [
          client.service,
          {
            calls: now.calls - then.calls,
            failed: now.failed - then.failed,
            breakerOpened: now.breakerOpened - then.breakerOpened,
          },
        ];
      }),
    );
  }
}

/** One instance: the guard reads this process's counts. */
export class InstanceFigures implements StageFigures {
  private readonly tally: InstanceTally;

  constructor(clients: readonly UpstreamClient[]) {
    this.tally = new InstanceTally(clients);
  }

  begin(stage: string | undefined): void {
    this.tally.begin(stage);
  }

  read(stage: string): Promise<Record<string, ServiceFigures>> {
    this.tally.begin(stage);
    return Promise.resolve(this.tally.since());
  }

  async close(): Promise<void> {}
}

export const FIGURES_PREFIX = 'killswitch:ramp-figures:';
/** How often an instance tells Redis its counts while a stage runs (and at once when a breaker opens). */
const PUBLISH_EVERY_MS = 500;
/** A stage's counts are kept a day: long enough for any ramp, then Redis forgets them. */
const KEEP_MS = 24 * 3_600_000;

/**
 * Several instances: each writes its own counts for the stage into one Redis hash (a field per
 * instance, its whole count each time, so a repeated write never counts twice) every half second
 * while they change, and at once when a breaker opens; the guard sums the hash. No Redis call per
 * third-party call, none at all when no ramp runs.
 */
export class ClusterFigures implements StageFigures {
  private readonly tally: InstanceTally;
  private readonly redis: Redis;
  private timer: NodeJS.Timeout | undefined;
  private told = '';

  /** `redis` is shared with the ramp's other parts: the caller closes it. */
  constructor(
    clients: readonly UpstreamClient[],
    redis: Redis,
    private readonly instance: string,
    private readonly logger: Logger,
  ) {
    this.tally = new InstanceTally(clients);
    this.redis = redis;
    for (const client of clients)
      client.onBreakerStateChange((state) => {
        if (state === 'open') void this.publish();
      });
  }

  begin(stage: string | undefined): void {
    if (!this.tally.begin(stage)) return;
    this.told = '';
    clearInterval(this.timer);
    this.timer = undefined;
    if (stage === undefined) return;
    this.timer = setInterval(() => void this.publish(), PUBLISH_EVERY_MS).unref();
    void this.publish();
  }

  async read(stage: string): Promise<Record<string, ServiceFigures>> {
    this.begin(stage);
    await this.publish();
    const fields = await this.redis.hgetall(FIGURES_PREFIX + stage);
    const sum: Record<string, ServiceFigures> = {};
    for (const value of Object.values(fields)) {
      for (const [service, figures] of Object.entries(JSON.parse(value) as Record<string, ServiceFigures>)) {
        const total = (sum[service] ??= zero());
        total.calls += figures.calls;
        total.failed += figures.failed;
        total.breakerOpened += figures.breakerOpened;
      }
    }
    return sum;
  }

  private async publish(): Promise<void> {
    const stage = this.tally.current();
    if (stage === undefined) return;
    const figures = JSON.stringify(this.tally.since());
    if (figures === this.told) return;
    try {
      const key = FIGURES_PREFIX + stage;
      await this.redis.multi().hset(key, this.instance, figures).pexpire(key, KEEP_MS).exec();
      this.told = figures;
    } catch (error) {
      this.logger.debug({ err: error }, 'could not tell Redis the stage figures; will try again');
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
  }
}
