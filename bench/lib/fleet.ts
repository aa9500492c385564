import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const WORKER = fileURLToPath(new URL('./client-worker.ts', import.meta.url));

/** Browsers spread over worker processes, so that the clients do not share the server's CPU thread. */
export class Fleet {
  private constructor(private readonly workers: ChildProcess[]) {}

  static async connect(url: string, viewers: string[], processes = 2, options: { refetchJitterMs?: number } = {}): Promise<Fleet> {
    const workers = Array.from({ length: processes }, () => fork(WORKER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    const fleet = new Fleet(workers);
    await Promise.all(
      workers.map(async (worker, index) => {
        const mine = viewers.filter((_, i) => i % processes === index);
        const ready = once(worker, 'message');
        worker.send({ type: 'connect', url, viewers: mine, ...options });
        await ready;
      }),
    );
    return fleet;
  }

  /** Every browser's flag_update receipt times (and values) since the last collect. */
  async collect(): Promise<{ times: number[][]; values: unknown[][]; fragments: number[]; fragmentErrors: number; fragmentsLive: number }> {
    const replies = await Promise.all(
      this.workers.map(async (worker) => {
        const reply = once(worker, 'message');
        worker.send({ type: 'collect' });
        return (await reply)[0] as { times: number[][]; values: unknown[][]; fragments: number[]; fragmentErrors: number; fragmentsLive: number };
      }),
    );
    return {
      times: replies.flatMap((r) => r.times),
      values: replies.flatMap((r) => r.values),
      fragments: replies.flatMap((r) => r.fragments),
      fragmentErrors: replies.reduce((sum, r) => sum + r.fragmentErrors, 0),
      fragmentsLive: replies.reduce((sum, r) => sum + r.fragmentsLive, 0),
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map(async (worker) => {
      const exited = once(worker, 'exit');
      worker.send({ type: 'close' });
      await exited;
    }));
  }
}

export const wallClock = () => performance.timeOrigin + performance.now();

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);
