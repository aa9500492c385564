import type { PacedService } from './pacing.js';

/**
 * This process's own capacity for live renders, as the pacer's `renderer` resource: one event
 * loop (capacity 1), each live render costing the CPU time it was last measured at, divided by
 * the share of the loop renders may take. Without it a restore of thousands of pages is paced by
 * the third party alone, and on one core this process is the bottleneck: its loop saturates and
 * a new viewer's page waits seconds behind the refetches.
 */
export interface RenderCost extends PacedService {
  /** A live render (one that made third-party calls) was done. */
  rendered(): void;
  /** The CPU milliseconds one live render costs, as last measured (or the first guess). */
  cpuMsPerRender(): number;
  close(): void;
}

export interface RenderCostOptions {
  /** How often the process's CPU time is sampled. */
  sampleMs?: number;
  /** A sample with fewer live renders than this says too little, and is not used. */
  minRenders?: number;
  /** The share of the loop live renders may take: the rest is for page loads, pushes, the admin. */
  share?: number;
  /** The guess before the first sample, and the estimate while the process is not busy. */
  initialMs?: number;
  cpuUsage?: () => NodeJS.CpuUsage;
}

/** The share of the time on CPU from which this process counts as busy. */
const BUSY_SHARE = 0.5;

/**
 * Samples the process's CPU time (user and system) every `sampleMs` (an unref'd timer: it never
 * keeps the process alive). While the process is busy (half of the time or more on CPU) it charges
 * all of it to the live renders done in that time: an upper bound (page loads, pushes, GC are
 * charged too), so the pace errs on the slow side when it matters, in a restore, when renders are
 * most of the work. While it is not busy, this process is not what limits the pace: the estimate
 * returns to the first guess, so that other work (killed pages, the admin page) charged to a few
 * live renders does not make it defer new readers' pages for nothing.
 */
export function measureRenderCost(options: RenderCostOptions = {}): RenderCost {
  const sampleMs = options.sampleMs ?? 500;
  const minRenders = options.minRenders ?? 20;
  const share = options.share ?? 0.6;
  const cpuUsage = options.cpuUsage ?? (() => process.cpuUsage());
  const initialMs = options.initialMs ?? 2;
  let costMs = initialMs;
  let renders = 0;
  let last = cpuUsage();
  const timer = setInterval(() => {
    const usage = cpuUsage();
    const cpuMs = (usage.user - last.user + usage.system - last.system) / 1000;
    last = usage;
    const busy = cpuMs >= sampleMs * BUSY_SHARE;
    const sample = busy && renders >= minRenders ? cpuMs / renders : busy ? costMs : initialMs;
    costMs = costMs * 0.5 + sample * 0.5;
    renders = 0;
  }, sampleMs);
  timer.unref();

  return {
    service: 'renderer',
    capacity: 1,
    latencyMs: () => costMs / share,
    cpuMsPerRender: () => costMs,
    rendered: () => void renders++,
    close: () => clearInterval(timer),
  };
}
