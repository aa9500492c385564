/**
 * The single-core case: the server under test on core 0 (`taskset -c 0`), the browsers and the
 * orchestrator on core 1, as a small container would run it. BENCH_PIN=0 leaves it to the scheduler.
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

export const PINNED = process.env.BENCH_PIN !== '0' && availableParallelism() >= 2 && existsSync('/usr/bin/taskset');

const SERVER = fileURLToPath(new URL('./server-process.ts', import.meta.url));

/** Moves this process (and the workers it forks from now on) to core 1. */
export function pinToBrowserCore(): void {
  if (PINNED) spawnSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' });
}

/**
 * Starts bench/lib/server-process.ts (`mode` and its arguments) on core 0, with the IPC channel
 * kept through taskset's exec; resolves once it listens.
 */
export async function startServerProcess(
  args: string[],
  nodeOptions: string[] = [],
): Promise<{ child: ChildProcess; url: string }> {
  const node = ['--import', 'tsx', '--expose-gc', ...nodeOptions];
  const child = PINNED
    ? fork(SERVER, args, {
        execPath: '/usr/bin/taskset',
        execArgv: ['-c', '0', process.execPath, ...node],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      })
    : fork(SERVER, args, { execArgv: node, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [message] = (await once(child, 'message')) as [{ url: string }];
  return { child, url: message.url };
}
