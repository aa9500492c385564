import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';

const WORKER = fileURLToPath(new URL('./client-worker.ts', import.meta.url));

export interface Received {
  times: number[][];
  values: unknown[][];
  /** Requests the pages made to our server: fragments served, turns handed out (503), failures. */
  requests: { fragments: number; waits: number; failures: number };
  kills: number;
  /** The widest refetch window (ms) an update carried: the spread the pages' refetches follow. */
  windowMs: number;
}

export interface PageStates {
  killed: number;
  live: number;
  short: number;
  waiting: number;
  /** Pages with a refetch to come (scheduled or in flight). */
  busy: number;
  lastLiveAt: number;
}

/** One flip as the browsers saw it. */
export interface Arrival {
  /** Each update's latency in ms from the request being sent, sorted. */
  latencies: number[];
  /** Socket.IO heartbeats (pings) the browsers answered while it arrived: other work on their core. */
  heartbeats: number;
  /** The browsers' own GC pauses while it arrived, ms, over all their processes. */
  gcMs: number;
}

/** Browsers spread over worker processes, so that the clients do not share the server's CPU thread. */
export class Fleet {
  private constructor(private readonly workers: ChildProcess[]) {}

  /**
   * `nice`: the workers' scheduling priority (0-19; higher yields more). A benchmark that times a
   * probe of its own (a new viewer's page) beside thousands of pages on one core gives the pages a
   * lower priority, so that the probe measures our server, not the benchmark's own browsers.
   * `spreadMs`: the browsers open over this long, evenly. Real pages open at scattered moments, so
   * the server's heartbeats to them are scattered too; a fleet opened in one burst is pinged in one
   * burst every interval, which lands on some flips and not on others.
   */
  static async connect(
    url: string,
    viewers: string[],
    processes = 2,
    options: { nice?: number; spreadMs?: number } = {},
  ): Promise<Fleet> {
    const workers = Array.from({ length: processes }, () =>
      fork(WORKER, [], {
        // Hundreds of light browsers share each worker's heap, so one collection stalls them all at
        // once, which no real browser's does: a young generation that holds a flip's allocations
        // makes one during a flip rare (a forced GC before each flip shrank it, and slowed them all).
        execArgv: ['--import', 'tsx', '--min-semi-space-size=64', '--max-semi-space-size=64'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
    if (options.nice) for (const worker of workers) setPriority(worker.pid!, options.nice);
    const fleet = new Fleet(workers);
    await Promise.all(
      workers.map(async (worker, index) => {
        const mine = viewers.filter((_, i) => i % processes === index);
        const ready = once(worker, 'message');
        worker.send({ type: 'connect', url, viewers: mine, spreadMs: options.spreadMs ?? 0 });
        await ready;
      }),
    );
    return fleet;
  }

  /** Every browser's flag_update receipt times (and values), and the requests pages made, since the last collect. */
  async collect(): Promise<Received> {
    const replies = await this.ask<Received>('collect');
    return {
      times: replies.flatMap((r) => r.times),
      values: replies.flatMap((r) => r.values),
      requests: {
        fragments: replies.reduce((sum, r) => sum + r.requests.fragments, 0),
        waits: replies.reduce((sum, r) => sum + r.requests.waits, 0),
        failures: replies.reduce((sum, r) => sum + r.requests.failures, 0),
      },
      kills: replies.reduce((sum, r) => sum + r.kills, 0),
      windowMs: Math.max(0, ...replies.map((r) => r.windowMs)),
    };
  }

  /**
   * Times one flip as its browsers see it: each worker is armed, `send` is called (the clock starts
   * just before), and each worker answers by itself once every browser has had an update
   * (`every`), or once none has come for `quietMs` (a flip that reaches only some). Nothing asks the
   * workers anything while the update arrives: a question meanwhile would be answered between
   * receipts, on the browsers' core, and delay the ones behind it.
   */
  async timeFlip(
    send: () => Promise<unknown>,
    { every = true, quietMs = 300 }: { every?: boolean; quietMs?: number } = {},
  ): Promise<Arrival> {
    await this.ask('arm', { every, quietMs });
    const replies = this.workers.map(
      async (worker) => (await once(worker, 'message'))[0] as { times: number[][]; heartbeats: number; gcMs: number },
    );
    const sent = wallClock();
    await send();
    const arrived = await Promise.all(replies);
    return {
      latencies: arrived
        .flatMap((reply) => reply.times.flat())
        .map((t) => t - sent)
        .sort((a, b) => a - b),
      heartbeats: arrived.reduce((sum, reply) => sum + reply.heartbeats, 0),
      gcMs: arrived.reduce((sum, reply) => sum + reply.gcMs, 0),
    };
  }

  /** What the pages show now: killed, live and whole, live but short, or waiting for content. */
  async state(): Promise<PageStates> {
    const replies = await this.ask<PageStates>('state');
    return {
      killed: replies.reduce((sum, r) => sum + r.killed, 0),
      live: replies.reduce((sum, r) => sum + r.live, 0),
      short: replies.reduce((sum, r) => sum + r.short, 0),
      waiting: replies.reduce((sum, r) => sum + r.waiting, 0),
      busy: replies.reduce((sum, r) => sum + r.busy, 0),
      lastLiveAt: Math.max(...replies.map((r) => r.lastLiveAt)),
    };
  }

  /**
   * Resolves once no page has anything left to do (no refetch scheduled or in flight: spreads,
   * turns and retries all done), at most `ms`; throws when that takes longer.
   */
  async settled(ms = 5 * 60_000): Promise<void> {
    const until = Date.now() + ms;
    for (;;) {
      const state = await this.state();
      if (state.busy === 0 && state.waiting === 0) return;
      if (Date.now() > until)
        throw new Error(`pages not settled after ${ms} ms: ${state.busy} busy, ${state.waiting} waiting`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  private ask<T>(type: string, options: object = {}): Promise<T[]> {
    return Promise.all(
      this.workers.map(async (worker) => {
        const reply = once(worker, 'message');
        worker.send({ type, ...options });
        return (await reply)[0] as T;
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(async (worker) => {
        const exited = once(worker, 'exit');
        worker.send({ type: 'close' });
        await exited;
      }),
    );
  }
}

export const wallClock = () => performance.timeOrigin + performance.now();

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export const median = (values: number[]) =>
  percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
