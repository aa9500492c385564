import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config } from '../config.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { RampDriver } from '../ramp/driver.js';
import { ClusterFigures, InstanceFigures } from '../ramp/figures.js';
import { processLease, RedisLease } from '../ramp/lease.js';
import { FileRampStore } from '../ramp/store.js';
import { RedisRampStore } from '../ramp/store-redis.js';
import { createRedisClient } from '../redis.js';
import { storeFiles } from '../store-files.js';
import type { Closers } from './closers.js';
import type { Flags } from './flags.js';
import type { Upstream } from './upstream.js';

/** A driver that dies is replaced within this long and a tick. */
const LEASE_TTL_MS = 3000;

/**
 * The guarded restore: kept beside the flags (the file's folder, or Redis), judged by the third
 * party's calls (this instance's, or every instance's through Redis), driven by this process or
 * by the instance holding the lease. Absent with read-only flags (LaunchDarkly).
 */
export async function startRamp(
  config: Config,
  logger: Logger,
  deps: { flags: Flags; upstream: Upstream; metrics: Metrics },
  closers: Closers,
): Promise<RampDriver | undefined> {
  const { repository } = deps.flags;
  if (!repository) return undefined;
  const log = logger.child({ component: 'ramp' });
  const clients = deps.upstream.clients;
  const instance = `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
  // One connection for the ramp's store, figures and lease (and one to hear of saves).
  const redis = config.redisUrl
    ? createRedisClient(config.redisUrl, { logger: log, name: 'ramp', lazy: false })
    : undefined;
  if (redis)
    closers.add('guarded restore redis', () =>
      redis.quit().then(
        () => undefined,
        () => redis.disconnect(),
      ),
    );
  const driver = new RampDriver({
    repository,
    metrics: deps.metrics,
    logger,
    ...(redis && config.redisUrl
      ? {
          store: new RedisRampStore(redis, config.redisUrl, log),
          figures: new ClusterFigures(clients, redis, instance, log),
          lease: new RedisLease(redis, instance, LEASE_TTL_MS),
        }
      : {
          store: new FileRampStore(storeFiles(config.flagsFile).ramp),
          figures: new InstanceFigures(clients),
          lease: processLease,
        }),
  });
  await driver.start();
  closers.add('guarded restore', () => driver.close());
  return driver;
}
