import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BudgetState } from '../../protocol/wire.js';

export type UpstreamService = 'avatars' | 'recommendations';
/** What became of one third-party call that was actually made. */
export type UpstreamOutcome = 'ok' | 'error' | 'timeout' | 'invalid';
/**
 * Why a third-party call was not made at all (so it is not in upstream_requests_total): the kill
 * switch, an open breaker, no free slot in time, or a render deferred to its turn by the pacer.
 */
export type UpstreamSkipReason = 'killed' | 'breaker_open' | 'over_capacity' | 'deferred';
/** One service's cap on calls in flight and how it stands (the upstream client's budget). */
export interface ServiceBudget {
  service: UpstreamService;
  budget: BudgetState;
}

/** The third party: calls made and not made, their durations, the breakers, the pacer's decisions. */
function thirdPartyMetrics(registry: Registry) {
  return {
    upstreamRequests: new Counter({
      name: 'upstream_requests_total',
      help: 'Third-party calls actually made, by service and outcome',
      labelNames: ['service', 'outcome'] as const,
      registers: [registry],
    }),
    upstreamSkipped: new Counter({
      name: 'upstream_calls_skipped_total',
      help: 'Third-party calls not made, by service and reason (kill switch, open breaker, over capacity)',
      labelNames: ['service', 'reason'] as const,
      registers: [registry],
    }),
    upstreamDuration: new Histogram({
      name: 'upstream_request_duration_seconds',
      help: 'Duration of third-party calls actually made',
      labelNames: ['service', 'outcome'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2],
      registers: [registry],
    }),
    breakerState: new Gauge({
      name: 'upstream_breaker_state',
      help: 'Circuit breaker per third-party service: 0 closed, 1 half-open, 2 open (or isolated)',
      labelNames: ['service'] as const,
      registers: [registry],
    }),
    pacing: new Counter({
      name: 'upstream_pacing_total',
      help: 'Live renders asked of the pacer: admitted now, admitted on a turn handed out earlier, or deferred to a turn',
      labelNames: ['decision'] as const,
      registers: [registry],
    }),
  };
}

/** Flag changes, and their push to the browsers. */
function flagMetrics(registry: Registry) {
  return {
    flagFlips: new Counter({
      name: 'flag_flips_total',
      help: 'Flag definition changes applied, by flag and source',
      labelNames: ['key', 'source'] as const,
      registers: [registry],
    }),
    flagUpdatesSent: new Counter({
      name: 'flag_updates_sent_total',
      help: 'flag_update events delivered to browsers (one per browser that received one)',
      labelNames: ['key'] as const,
      registers: [registry],
    }),
    pushDuration: new Histogram({
      name: 'flag_push_duration_seconds',
      help: 'Time from a flag change reaching this instance to the last flag_update handed to the sockets',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
  };
}

/** The pages: browsers connected, renders; and the process's faults nobody caught. */
function pageMetrics(registry: Registry) {
  return {
    connectedBrowsers: new Gauge({
      name: 'connected_browsers',
      help: 'Browsers (feed pages) connected over Socket.IO to this instance',
      registers: [registry],
    }),
    pageViews: new Counter({
      name: 'page_views_total',
      help: 'Feed renders (full pages and live-region fragments), by whether the kill switch was on',
      labelNames: ['kind', 'live'] as const,
      registers: [registry],
    }),
    processFaults: new Counter({
      name: 'process_faults_total',
      help: 'Faults nobody caught: unhandled promise rejections (logged; the server keeps serving) and uncaught exceptions (logged; graceful stop)',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
  };
}

/**
 * The cap on calls in flight per service, read when scraped from the upstream clients' budgets
 * (registered once they exist: observeBudgets).
 */
function budgetMetrics(registry: Registry) {
  let budgets: () => readonly ServiceBudget[] = () => [];
  const fromBudgets = (pick: (budget: BudgetState) => number, scoped: boolean) =>
    function (this: Gauge<'service' | 'scope'>) {
      this.reset();
      for (const { service, budget } of budgets())
        this.set(scoped ? { service, scope: budget.scope } : { service }, pick(budget));
    };
  return {
    observeBudgets(source: () => readonly ServiceBudget[]) {
      budgets = source;
    },
    budgetInUse: new Gauge({
      name: 'upstream_budget_in_use',
      help: 'Third-party calls in flight per service, across the scope of its cap: the cluster (with Redis) or this instance',
      labelNames: ['service', 'scope'] as const,
      registers: [registry],
      collect: fromBudgets((budget) => budget.inUse, true),
    }),
    budgetCap: new Gauge({
      name: 'upstream_budget_cap',
      help: 'The cap on third-party calls in flight per service (UPSTREAM_MAX_CONCURRENCY), for the cluster or this instance',
      labelNames: ['service', 'scope'] as const,
      registers: [registry],
      collect: fromBudgets((budget) => budget.cap, true),
    }),
    budgetHeld: new Gauge({
      name: 'upstream_budget_held',
      help: "The part of the cap this instance may use now: its slice of the cluster's, or the whole cap without Redis",
      labelNames: ['service'] as const,
      registers: [registry],
      collect: fromBudgets((budget) => budget.held, false),
    }),
  };
}

/**
 * One registry per app instance (not prom-client's global one), so that several instances
 * can live in one process, as they do in the tests.
 */
/** A guarded restore: where it stands, and how ramps ended. */
function rampMetrics(registry: Registry) {
  return {
    rampStage: new Gauge({
      name: 'ramp_stage',
      help: 'The running guarded restore: its stage (0 for the first), or -1 when none runs',
      registers: [registry],
    }),
    rampPercentLive: new Gauge({
      name: 'ramp_percent_live',
      help: 'The running guarded restore: the share of viewers live now, in percent (0 when none runs)',
      registers: [registry],
    }),
    rampEnds: new Counter({
      name: 'ramp_ends_total',
      help: 'Guarded restores ended, by how: completed, rolled-back (the guard, or an automatic kill) or stopped (a person)',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
  };
}

export function createMetrics(options: { collectDefaults?: boolean } = {}) {
  const registry = new Registry();
  if (options.collectDefaults ?? true) collectDefaultMetrics({ register: registry });
  return {
    registry,
    ...thirdPartyMetrics(registry),
    ...budgetMetrics(registry),
    ...flagMetrics(registry),
    ...pageMetrics(registry),
    ...rampMetrics(registry),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
