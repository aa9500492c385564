import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { waitFor } from '../helpers/app.js';
import { runToEnd, startAppProcess } from '../helpers/process.js';

describe('the server as a process', () => {
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'killswitch-proc-'));
    env = { FLAGS_FILE: path.join(dir, 'flags.json'), LOG_LEVEL: 'info' };
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('generates an admin token at first start, prints it once, and keeps it (0600) for the CLI', async () => {
    const first = await startAppProcess(env);
    const tokenFile = path.join(dir, 'admin-token');
    const token = (await readFile(tokenFile, 'utf8')).trim();
    expect(token.length).toBeGreaterThanOrEqual(24);
    expect((await stat(tokenFile)).mode & 0o777).toBe(0o600);
    expect(first.output().split(token).length - 1).toBe(1);
    expect((await first.stop()).code).toBe(0);

    const second = await startAppProcess(env);
    expect(second.output()).not.toContain(token);
    expect((await second.stop()).code).toBe(0);
  });

  it('flips from the command line, and a kill survives a restart', async () => {
    const app = await startAppProcess(env);
    const cli = (...args: string[]) => runToEnd('server/flags/cli.ts', args, { ...env, FLAG_API_URL: app.url });
    const listed = await cli('list');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${KILL_SWITCH}\\s+ENABLED`));
    const killed = await cli('kill');
    expect(killed.code).toBe(0);
    expect(killed.stdout).toMatch(/^killed: show-avatars-and-reccs\s+DISABLED/);
    expect((await app.stop()).code).toBe(0);

    const restarted = await startAppProcess(env);
    const page = await (await fetch(`${restarted.url}/?user=maya`)).text();
    expect(page).toContain('data-show-avatars="false"');
    const audit = await (await fetch(`${restarted.url}/api/audit`)).json();
    expect(audit.entries[0]).toMatchObject({ key: KILL_SWITCH, summary: 'killed (disabled)', actor: { source: 'cli' } });

    const restored = await runToEnd('server/flags/cli.ts', ['restore'], { ...env, FLAG_API_URL: restarted.url });
    expect(restored.stdout).toMatch(/^restored: show-avatars-and-reccs\s+ENABLED/);
    const unknown = await runToEnd('server/flags/cli.ts', ['get', 'nope'], { ...env, FLAG_API_URL: restarted.url });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/404: Unknown flag "nope"/);
    expect((await restarted.stop()).code).toBe(0);
  });

  it('shuts down gracefully on SIGTERM: not ready, browsers told to reconnect, exit 0', async () => {
    const app = await startAppProcess(env);
    const socket = io(app.url, { transports: ['websocket'], reconnectionDelay: 100, reconnectionDelayMax: 200 });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const reasons: string[] = [];
    socket.on('disconnect', (reason) => reasons.push(reason));
    const { code } = await app.stop('SIGTERM');
    expect(code).toBe(0);
    await waitFor(() => reasons.length > 0, 3000, 'the disconnect');
    // "transport close", not "io server disconnect": the client reconnects by itself.
    expect(reasons[0]).toBe('transport close');
    expect(socket.active).toBe(true);
    socket.close();
    expect(app.logs.some((entry) => entry.msg === 'stopped')).toBe(true);
  });

  it('refuses a bad variable with one line that names it', async () => {
    const result = await runToEnd('server/main.ts', [], { ...env, PORT: 'eighty' });
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^Invalid environment variable PORT="eighty": /);
    const timeout = await runToEnd('server/main.ts', [], { ...env, UPSTREAM_TIMEOUT_MS: '-5' });
    expect(timeout.stderr).toMatch(/UPSTREAM_TIMEOUT_MS/);
  });
});
