import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { within } from '../bounded-wait.js';
import type { Config } from '../config.js';
import { FALLBACK_RECOMMENDATIONS } from '../feed/content.js';
import { killedForEveryone } from '../flags/kill-switch.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics, UpstreamService } from '../observability/metrics.js';
import { autoKillOnBreakerOpen } from '../upstream/auto-kill.js';
import { createRedisClient } from '../redis.js';
import { createAvatarService, type AvatarService } from '../upstream/avatars.js';
import { ClusterBudget, InstanceBudget, type Budget } from '../upstream/budget.js';
import { createUpstreamClient, type UpstreamClient } from '../upstream/client.js';
import { watchLoopStalls } from '../upstream/loop-stalls.js';
import { createPacer, type Pacer } from '../upstream/pacing.js';
import { createRecommendationService, type RecommendationService } from '../upstream/recommendations.js';
import { measureRenderCost, type RenderCost } from '../upstream/render-cost.js';
import type { Closers } from './closers.js';
import type { Flags } from './flags.js';
import type { ThirdParty } from './third-party.js';

export interface Upstream {
  /** The third-party clients (avatars, recommendations): their breakers and capacity. */
  clients: readonly [UpstreamClient, UpstreamClient];
  avatars: AvatarService;
  recommendations: RecommendationService;
  pacer: Pacer;
  renderCost: RenderCost;
}

/**
 * The cap on calls in flight per service: this instance's alone, or with Redis the cluster's, each
 * instance leasing a slice of it (its share of the open pages is what its pacer plans with).
 */
function budgets(
  config: Config,
  logger: Logger,
  pageShare: () => number,
  closers: Closers,
): (service: UpstreamService) => Budget {
  const cap = config.upstreamMaxConcurrency;
  if (!config.redisUrl) return () => new InstanceBudget(cap);
  const redis = createRedisClient(config.redisUrl, { logger, name: 'third-party budget', lazy: false });
  // Named so that an operator reading the leases in Redis knows whose they are.
  const instance = `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
  const made: ClusterBudget[] = [];
  closers.add('third-party budget', async () => {
    // What is not in use is given back now, not when the lease runs out: a rolling deploy's next
    // instance has it at once. Bounded: a Redis that does not answer holds up no stop.
    await within(Promise.all(made.map((budget) => budget.close())), 1000);
    redis.disconnect();
  });
  return (service) => {
    const budget = new ClusterBudget({
      redis,
      service,
      cap,
      instance,
      logger: logger.child({ component: `budget-${service}` }),
      share: pageShare,
    });
    made.push(budget);
    return budget;
  };
}

/**
 * The third party's services behind their policies (timeout, breaker, the cap), and the pacing of
 * live renders by the third party's measured capacity and by this process's own (the CPU a live
 * render costs): a restore stampedes neither.
 */
export function startUpstream(
  config: Config,
  logger: Logger,
  deps: { thirdParty: ThirdParty; flags: Flags; metrics: Metrics; pageShare: () => number },
  closers: Closers,
): Upstream {
  const { flags, metrics } = deps;
  const policy = { timeoutMs: config.upstreamTimeoutMs, maxConcurrent: config.upstreamMaxConcurrency };
  const budgetOf = budgets(config, logger, deps.pageShare, closers);
  // A timeout during a stall of our own is not the third party's failure (see client.ts).
  const stalls = watchLoopStalls();
  closers.add('loop stalls', () => stalls.close());
  // A call still queued when the switch goes off for everyone is dropped, not made late.
  const stillWanted = async () => !(await killedForEveryone(flags.provider));
  const client = (service: UpstreamService) =>
    createUpstreamClient({
      service,
      policy,
      budget: budgetOf(service),
      metrics,
      stalls,
      stillWanted,
      logger: logger.child({ component: `upstream-${service}` }),
    });
  const clients = [client('avatars'), client('recommendations')] as const;
  metrics.observeBudgets(() => clients.map((c) => ({ service: c.service, budget: c.budgetUsage() })));
  const renderCost = measureRenderCost();
  closers.add('render cost', () => renderCost.close());
  const pacer = createPacer({ services: [...clients, renderCost], budgetMs: config.upstreamTimeoutMs / 2 });
  const avatars = createAvatarService({ baseUrl: deps.thirdParty.avatarApiUrl, client: clients[0], logger });
  const recommendations = createRecommendationService({
    baseUrl: deps.thirdParty.recommendationsApiUrl,
    client: clients[1],
    logger,
    ttlMs: config.recommendationsCacheTtlMs,
    fallback: FALLBACK_RECOMMENDATIONS,
  });
  if (config.autoKill) {
    if (flags.repository) autoKillOnBreakerOpen({ clients: [...clients], flags: flags.repository, logger });
    else logger.warn(`AUTO_KILL needs writable flags; with ${flags.provider.kind} it does nothing`);
  }
  return { clients, avatars, recommendations, pacer, renderCost };
}
