import type { Metrics } from '../observability/metrics.js';

import type { StatsSample } from '../../protocol/wire.js';

export type { StatsSample };

const HISTORY = 300;

/**
 * Samples the Prometheus counters once a second into per-second figures: the same numbers
 * /metrics has, as rates. Keeps the last five minutes for a dashboard that connects late.
 */
export function createStatsSampler(options: {
  metrics: Metrics;
  browsers: () => number;
  onSample: (sample: StatsSample) => void;
  intervalMs?: number;
}) {
  const history: StatsSample[] = [];
  let previous: Awaited<ReturnType<typeof totals>> | undefined;

  async function totals() {
    const calls: Record<string, number> = { ok: 0, error: 0, timeout: 0, invalid: 0 };
    for (const value of (await options.metrics.upstreamRequests.get()).values) {
      const outcome = String(value.labels.outcome);
      calls[outcome] = (calls[outcome] ?? 0) + value.value;
    }
    let durationSum = 0;
    let durationCount = 0;
    for (const value of (await options.metrics.upstreamDuration.get()).values) {
      if (value.metricName === 'upstream_request_duration_seconds_sum') durationSum += value.value;
      if (value.metricName === 'upstream_request_duration_seconds_count') durationCount += value.value;
    }
    let pageViews = 0;
    for (const value of (await options.metrics.pageViews.get()).values) pageViews += value.value;
    const budget: StatsSample['budget'] = {};
    for (const value of (await options.metrics.budgetInUse.get()).values)
      (budget[String(value.labels.service)] ??= { inUse: 0, cap: 0 }).inUse = value.value;
    for (const value of (await options.metrics.budgetCap.get()).values)
      (budget[String(value.labels.service)] ??= { inUse: 0, cap: 0 }).cap = value.value;
    return { calls, durationSum, durationCount, pageViews, budget };
  }

  const sample = async () => {
    const now = await totals();
    if (previous) {
      const before = previous;
      const delta = (name: string) => (now.calls[name] ?? 0) - (before.calls[name] ?? 0);
      const count = now.durationCount - before.durationCount;
      const point: StatsSample = {
        t: Date.now() / 1000,
        calls: { ok: delta('ok'), error: delta('error'), timeout: delta('timeout'), invalid: delta('invalid') },
        latencyMs: count > 0 ? Math.round(((now.durationSum - before.durationSum) / count) * 1000) : null,
        browsers: options.browsers(),
        pageViews: now.pageViews - before.pageViews,
        budget: now.budget,
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
