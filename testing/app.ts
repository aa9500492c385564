import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../server/config.js';
import { createLogger, type Logger } from '../server/observability/logger.js';
import { startApp, type RunningApp, type StartOptions } from '../server/runtime/start.js';

export const BENCH_TOKEN = 'bench-token-0123456789';

/**
 * The app's logger as a user gets it (LOG_LEVEL info, each line written synchronously, as to
 * stdout), writing to /dev/null: the benchmarks pay for logging as the app does, without a
 * terminal to flood.
 */
export function benchLogger(level = 'info'): Logger {
  return createLogger(level as 'info', pino.destination({ dest: '/dev/null', sync: true }));
}

/**
 * The one way the tests and the benchmarks start the real app: in this process, on port 0, with
 * a flag folder of its own (made unless given) and its own built-in third party on a free port.
 */
export async function startLocalApp(
  env: Record<string, string>,
  options: { logger: Logger; dir?: string; start?: StartOptions },
): Promise<{ app: RunningApp; dir: string; env: Record<string, string> }> {
  const dir = options.dir ?? (await mkdtemp(path.join(tmpdir(), 'killswitch-')));
  const fullEnv = { PORT: '0', SIMULATOR_PORT: '0', FLAGS_FILE: path.join(dir, 'flags.json'), ...env };
  const app = await startApp(loadConfig(fullEnv), options.logger, { collectDefaultMetrics: false, ...options.start });
  return { app, dir, env: fullEnv };
}

/** A flag changed as an operator does it: PATCH /api/flags/:key with the benchmarks' admin token. */
export async function patchFlag(url: string, key: string, body: unknown): Promise<unknown> {
  const response = await fetch(`${url}/api/flags/${key}`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`PATCH ${key}: ${response.status} ${await response.text()}`);
  return response.json();
}

/**
 * The benchmarks' browsers all come from loopback (up to 10,000 at the default sizes): a cap on
 * sockets per address well above that, so that no size a run asks for is refused, while the cap's
 * own check still runs on every connection as it does for users.
 */
export const BENCH_MAX_SOCKETS_PER_ADDRESS = '100000';

/** The real app, for a benchmark: the defaults a user gets (but for the limits per address), logging at info to /dev/null. */
export async function startBenchApp(
  env: Record<string, string> = {},
): Promise<RunningApp & { stop(): Promise<void>; patch(key: string, body: unknown): Promise<unknown> }> {
  const { app, dir } = await startLocalApp(
    {
      ADMIN_TOKEN: BENCH_TOKEN,
      LOG_LEVEL: 'info',
      API_RATE_LIMIT_PER_MIN: '1000000',
      MAX_SOCKETS_PER_ADDRESS: BENCH_MAX_SOCKETS_PER_ADDRESS,
      ...env,
    },
    { logger: benchLogger(env.LOG_LEVEL ?? 'info') },
  );
  return Object.assign(app, {
    async stop() {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    },
    patch: (key: string, body: unknown) => patchFlag(app.url, key, body),
  });
}
