import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../../server/config.js';
import { createLogger, type Logger } from '../../server/observability/logger.js';
import { startApp, type RunningApp } from '../../server/runtime.js';

export const BENCH_TOKEN = 'bench-token-0123456789';

/**
 * The app's logger as a user gets it (LOG_LEVEL info, each line written synchronously, as to
 * stdout), writing to /dev/null: the benchmarks pay for logging as the app does, without a
 * terminal to flood.
 */
export function benchLogger(level = 'info'): Logger {
  return createLogger(level as 'info', pino.destination({ dest: '/dev/null', sync: true }));
}

/** The real app, in this process, on port 0, with its own flag folder and simulator, logging at info (the default). */
export async function startBenchApp(env: Record<string, string> = {}): Promise<RunningApp & { stop(): Promise<void>; patch(key: string, body: unknown): Promise<unknown> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'bench-'));
  const app = await startApp(
    loadConfig({
      PORT: '0',
      SIMULATOR_PORT: '0',
      FLAGS_FILE: path.join(dir, 'flags.json'),
      ADMIN_TOKEN: BENCH_TOKEN,
      LOG_LEVEL: 'info',
      API_RATE_LIMIT_PER_MIN: '1000000',
      ...env,
    }),
    benchLogger(env.LOG_LEVEL ?? 'info'),
    { collectDefaultMetrics: false },
  );
  return Object.assign(app, {
    async stop() {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    },
    async patch(key: string, body: unknown) {
      const response = await fetch(`${app.url}/api/flags/${key}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!response.ok) throw new Error(`PATCH ${key}: ${response.status} ${await response.text()}`);
      return response.json();
    },
  });
}
