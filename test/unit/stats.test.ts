import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createStatsSampler, type StatsSample } from '../../server/admin/stats.js';
import { createMetrics } from '../../server/observability/metrics.js';

beforeEach(() => vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] }));
afterEach(() => vi.useRealTimers());

describe("the dashboard's samples", () => {
  it('carry the time they were taken, so a flip made just after one is never placed before it', async () => {
    // Seven tenths into a second: where a timestamp rounded to the second is 0.3 s in the future.
    vi.setSystemTime(1_800_000_000_700);
    const metrics = createMetrics({ collectDefaults: false });
    const samples: StatsSample[] = [];
    const sampler = createStatsSampler({ metrics, browsers: () => 3, onSample: (sample) => samples.push(sample) });
    await vi.advanceTimersByTimeAsync(0); // its first reading of the counters, from which the first second counts
    metrics.upstreamRequests.inc({ service: 'avatars', outcome: 'ok' }, 4);
    metrics.pageViews.inc({ kind: 'page', live: 'true' }, 2);
    metrics.observeBudgets(() => [
      { service: 'avatars', budget: { scope: 'cluster', cap: 8, held: 2, inUse: 5, instances: 2 } },
    ]);
    await vi.advanceTimersByTimeAsync(1000);
    // A kill right after the sample, as the audit stamps it.
    const flipAt = Date.parse(new Date(Date.now() + 100).toISOString()) / 1000;
    sampler.stop();
    expect(samples).toEqual([
      {
        t: 1_800_000_001.7,
        calls: { ok: 4, error: 0, timeout: 0, invalid: 0 },
        latencyMs: null,
        browsers: 3,
        pageViews: 2,
        // The calls in flight across the cluster and its cap, as they stood at that second.
        budget: { avatars: { inUse: 5, cap: 8 } },
        // The same second per service: calls made, calls not made (a kill's savings), their mean duration.
        services: {
          avatars: {
            calls: { ok: 4, error: 0, timeout: 0, invalid: 0 },
            skipped: { killed: 0, breaker_open: 0, over_capacity: 0, deferred: 0 },
            latencyMs: null,
          },
        },
      },
    ]);
    expect(flipAt).toBeGreaterThan(samples[0]!.t);
  });
});
