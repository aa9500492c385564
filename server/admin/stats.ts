import type { Metrics } from '../observability/metrics.js';

import type { ServiceSecond, StatsSample } from '../../protocol/wire.js';

export type { StatsSample };

const HISTORY = 300;
const OUTCOMES = ['ok', 'error', 'timeout', 'invalid'] as const;
const SKIPS = ['killed', 'breaker_open', 'over_capacity', 'deferred'] as const;

type Totals = Awaited<ReturnType<typeof readTotals>>;

/** The counters' totals now: calls by service and outcome, calls not made by service and reason, durations by service. */
async function readTotals(metrics: Metrics) {
  const calls: Record<string, Record<string, number>> = {};
  for (const value of (await metrics.upstreamRequests.get()).values)
    (calls[String(value.labels.service)] ??= {})[String(value.labels.outcome)] = value.value;
  const skipped: Record<string, Record<string, number>> = {};
  for (const value of (await metrics.upstreamSkipped.get()).values)
    (skipped[String(value.labels.service)] ??= {})[String(value.labels.reason)] = value.value;
  const durations: Record<string, { sum: number; count: number }> = {};
  for (const value of (await metrics.upstreamDuration.get()).values) {
    const service = (durations[String(value.labels.service)] ??= { sum: 0, count: 0 });
    if (value.metricName === 'upstream_request_duration_seconds_sum') service.sum += value.value;
    if (value.metricName === 'upstream_request_duration_seconds_count') service.count += value.value;
  }
  let pageViews = 0;
  for (const value of (await metrics.pageViews.get()).values) pageViews += value.value;
  const budget: StatsSample['budget'] = {};
  for (const value of (await metrics.budgetInUse.get()).values)
    (budget[String(value.labels.service)] ??= { inUse: 0, cap: 0 }).inUse = value.value;
  for (const value of (await metrics.budgetCap.get()).values)
    (budget[String(value.labels.service)] ??= { inUse: 0, cap: 0 }).cap = value.value;
  return { calls, skipped, durations, pageViews, budget };
}

/** One second of one service: the calls made by outcome, those not made by reason, their mean duration. */
function serviceSecond(service: string, now: Totals, before: Totals): ServiceSecond {
  const made = (outcome: string) => (now.calls[service]?.[outcome] ?? 0) - (before.calls[service]?.[outcome] ?? 0);
  const notMade = (reason: string) => (now.skipped[service]?.[reason] ?? 0) - (before.skipped[service]?.[reason] ?? 0);
  const duration = now.durations[service] ?? { sum: 0, count: 0 };
  const earlier = before.durations[service] ?? { sum: 0, count: 0 };
  const count = duration.count - earlier.count;
  return {
    calls: Object.fromEntries(OUTCOMES.map((outcome) => [outcome, made(outcome)])) as ServiceSecond['calls'],
    skipped: Object.fromEntries(SKIPS.map((reason) => [reason, notMade(reason)])) as ServiceSecond['skipped'],
    latencyMs: count > 0 ? Math.round(((duration.sum - earlier.sum) / count) * 1000) : null,
  };
}

/**
 * Samples the Prometheus counters once a second into per-second figures: the same numbers
 * /metrics has, as rates, in all and per service (what the page's windows are summed from: the
 * calls a kill saves are counted as they are saved). Keeps the last five minutes for a dashboard
 * that connects late.
 */
export function createStatsSampler(options: {
  metrics: Metrics;
  browsers: () => number;
  onSample: (sample: StatsSample) => void;
  intervalMs?: number;
}) {
  const history: StatsSample[] = [];
  let previous: Totals | undefined;

  const sample = async () => {
    const now = await readTotals(options.metrics);
    if (previous) {
      const before = previous;
      const names = [...new Set([...Object.keys(now.calls), ...Object.keys(now.skipped), ...Object.keys(now.budget)])];
      const services = Object.fromEntries(names.map((service) => [service, serviceSecond(service, now, before)]));
      const all = Object.values(services);
      const durations = (totals: Totals) =>
        Object.values(totals.durations).reduce((sum, d) => ({ sum: sum.sum + d.sum, count: sum.count + d.count }), {
          sum: 0,
          count: 0,
        });
      const [durationNow, durationBefore] = [durations(now), durations(before)];
      const count = durationNow.count - durationBefore.count;
      const point: StatsSample = {
        t: Date.now() / 1000,
        calls: Object.fromEntries(
          OUTCOMES.map((outcome) => [outcome, all.reduce((n, s) => n + s.calls[outcome], 0)]),
        ) as StatsSample['calls'],
        latencyMs: count > 0 ? Math.round(((durationNow.sum - durationBefore.sum) / count) * 1000) : null,
        browsers: options.browsers(),
        pageViews: now.pageViews - before.pageViews,
        budget: now.budget,
        services,
      };
      history.push(point);
      if (history.length > HISTORY) history.shift();
      options.onSample(point);
    }
    previous = now;
  };

  const timer = setInterval(() => void sample(), options.intervalMs ?? 1000);
  timer.unref();
  void sample();
  return {
    history: () => [...history],
    stop: () => clearInterval(timer),
  };
}
