import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { THEME } from '../../server/flags/catalog.js';
import { counterValue, TEST_TOKEN, waitFor } from '../helpers/app.js';
import { killLeftoverAppProcesses, startAppProcess } from '../../testing/process.js';

const faultOnSignal = fileURLToPath(new URL('../fixtures/fault-on-signal.mjs', import.meta.url));

// Each test starts the compiled server as a process (1 s here, 5 s under load).
describe('faults nobody caught, in the server as a process', { timeout: 60_000 }, () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'killswitch-faults-'));
  });
  afterEach(() => killLeftoverAppProcesses());
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const start = (fault?: 'rejection' | 'exception') =>
    startAppProcess({
      FLAGS_FILE: path.join(dir, 'flags.json'),
      ADMIN_TOKEN: TEST_TOKEN,
      LOG_LEVEL: 'info',
      ...(fault ? { FAULT: fault, NODE_OPTIONS: `--import=${faultOnSignal}` } : {}),
    });

  it('answers the PATCH that once killed it (an Object.prototype member as operator) with 400, and lives on', async () => {
    const app = await start();
    const response = await fetch(`${app.url}/api/flags/${THEME}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
      body: '{"targeting":{"if":[{"__defineGetter__":[1]},"dark","light"]}}',
    });
    expect(response.status).toBe(400);
    // The crash came a moment after the answer: the process must still answer after a few turns.
    for (let i = 0; i < 5; i++) expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
    expect(app.child.exitCode).toBeNull();
    expect(counterValue(await (await fetch(`${app.url}/metrics`)).text(), 'process_faults_total')).toBe(0);
    expect((await app.stop()).code).toBe(0);
  });

  it('logs and counts a rejection nobody handles, and keeps serving', async () => {
    const app = await start('rejection');
    app.child.kill('SIGUSR2');
    await waitFor(() => app.logs.some((entry) => /nobody handled it/.test(entry.msg)), 10_000, 'the log line');
    const logged = app.logs.find((entry) => /nobody handled it/.test(entry.msg));
    expect(logged).toMatchObject({ level: 50, err: { message: 'a rejection nobody handles (test fault)' } });
    expect(logged.err.stack).toContain('fault-on-signal.mjs');
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    expect(counterValue(metrics, 'process_faults_total', { kind: 'unhandled_rejection' })).toBe(1);
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
    expect((await app.stop()).code).toBe(0);
  });

  it('stops gracefully, exit code 1, after an exception nobody catches', async () => {
    const app = await start('exception');
    // 'close', not 'exit': the output is read to its end (under load its last lines come after the exit).
    const closed = once(app.child, 'close');
    app.child.kill('SIGUSR2');
    const [code] = await closed;
    expect(code).toBe(1);
    expect(app.logs.find((entry) => /exception nobody caught/.test(entry.msg))).toMatchObject({
      level: 60,
      err: { message: 'an exception nobody catches (test fault)' },
    });
    // The graceful path ran to its end: the store flushed, then "stopped" (pino's buffered lines may
    // reach the pipe after the fatal one, so not necessarily last).
    expect(app.logs.map((entry) => entry.msg)).toContain('stopped');
  });
});
