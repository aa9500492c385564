import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { waitFor } from '../helpers/app.js';
import { killLeftoverAppProcesses, runToEnd, startAppProcess } from '../../testing/process.js';
import { freePort } from '../../testing/redis.js';

// Every test starts Node processes (the server, the CLI): about 1 s each here, 5 s with two busy
// loops beside the suite (35 s for the CLI test at worst). 90 s a test; see FILE_TIMEOUTS in scripts/test-under-load.mjs.
describe('the server as a process', { timeout: 90_000 }, () => {
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'killswitch-proc-'));
    env = { FLAGS_FILE: path.join(dir, 'flags.json'), LOG_LEVEL: 'info' };
  });
  afterEach(() => killLeftoverAppProcesses());
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('generates an admin token at first start, shows it once where nobody misses it, and keeps it (0600) for the CLI', async () => {
    const first = await startAppProcess(env);
    const tokenFile = path.join(dir, 'admin-token');
    const token = (await readFile(tokenFile, 'utf8')).trim();
    expect(token.length).toBeGreaterThanOrEqual(24);
    expect((await stat(tokenFile)).mode & 0o777).toBe(0o600);
    // Framed on the console (stderr), with where to sign in; the structured log says where it is kept, not what it is.
    await waitFor(() => first.output().includes(token), 5000, 'the token on the console');
    expect(first.output().split(token).length - 1).toBe(1);
    expect(first.output()).toMatch(new RegExp(`┃ {3}${token} +┃`));
    expect(first.output()).toContain(`Sign in at ${first.url}/admin`);
    const logged = first.logs.find((entry) => /Generated an admin token/.test(entry.msg));
    expect(logged).toMatchObject({ level: 40, file: tokenFile });
    expect(JSON.stringify(first.logs)).not.toContain(token);
    expect((await first.stop()).code).toBe(0);

    const second = await startAppProcess(env);
    expect(second.output()).not.toContain(token);
    expect((await second.stop()).code).toBe(0);
  });

  // A server and four runs of the CLI, each a Node start: 5 s here, 20 s under two busy loops.
  it('flips from the command line, and says who did', async () => {
    const app = await startAppProcess(env);
    const cli = (...args: string[]) => runToEnd('server/flags/cli.ts', args, { ...env, FLAG_API_URL: app.url });
    const listed = await cli('list');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${KILL_SWITCH}\\s+ENABLED`));
    const killed = await cli('kill');
    expect(killed.code).toBe(0);
    expect(killed.stdout).toMatch(/^killed: show-avatars-and-reccs\s+DISABLED/);
    const again = await cli('kill');
    expect(again.stdout).toMatch(/^already killed, nothing changed: show-avatars-and-reccs\s+DISABLED/);
    // The list says who last changed each flag: the token's name, the CLI's note beside it.
    const after = (await cli('list')).stdout.split('\n');
    expect(after[0]).toMatch(/^FLAG\s+STATE\s+SERVES\s+VERSION\s+LAST CHANGE$/);
    expect(after.find((line) => line.startsWith(KILL_SWITCH))).toMatch(
      /DISABLED\s+safe default \(false\) to all\s+v\d+/,
    );
    expect(after.find((line) => line.startsWith(KILL_SWITCH))).toMatch(
      /DISABLED .* killed \(disabled\), by admin \(.+@.+\) via cli, \d{4}-\d\d-\d\d \d\d:\d\d UTC$/,
    );
    // Columns line up: every row's second column starts where the header's does.
    expect(new Set(after.filter(Boolean).map((line) => line.search(/\s(ENABLED|DISABLED|STATE)\b/))).size).toBe(1);
    expect((await app.stop()).code).toBe(0);
  });

  // Two servers and two runs of the CLI, in a folder of its own (the test above leaves its kill).
  it('keeps a kill across a restart, and the command line restores it', async () => {
    const own = await mkdtemp(path.join(dir, 'restart-'));
    const ownEnv = { ...env, FLAGS_FILE: path.join(own, 'flags.json') };
    const app = await startAppProcess(ownEnv);
    const token = (await readFile(path.join(own, 'admin-token'), 'utf8')).trim();
    const kill = await fetch(`${app.url}/api/flags/${KILL_SWITCH}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-actor': 'before-restart' },
      body: JSON.stringify({ state: 'DISABLED' }),
    });
    expect(kill.status).toBe(200);
    expect((await app.stop()).code).toBe(0);

    const restarted = await startAppProcess(ownEnv);
    const page = await (await fetch(`${restarted.url}/?user=maya`)).text();
    expect(page).toContain('data-show-avatars="false"');
    const audit = await (
      await fetch(`${restarted.url}/api/audit`, { headers: { authorization: `Bearer ${token}` } })
    ).json();
    expect(audit.entries[0]).toMatchObject({
      key: KILL_SWITCH,
      summary: 'killed (disabled)',
      actor: { source: 'api', name: 'admin', note: 'before-restart' },
    });

    const restored = await runToEnd('server/flags/cli.ts', ['restore'], { ...ownEnv, FLAG_API_URL: restarted.url });
    expect(restored.stdout).toMatch(/^restored: show-avatars-and-reccs\s+ENABLED/);
    const live = await (await fetch(`${restarted.url}/?user=maya`)).text();
    expect(live).toContain('data-show-avatars="true"');
    const unknown = await runToEnd('server/flags/cli.ts', ['get', 'nope'], { ...ownEnv, FLAG_API_URL: restarted.url });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/404: Unknown flag "nope"/);
    expect((await restarted.stop()).code).toBe(0);
  });

  it('shuts down gracefully on SIGTERM: browsers told to reconnect (not cut), stopped logged, exit 0', async () => {
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

  it('SIGTERM right after a burst of flips: every flip is in the audit on disk', async () => {
    const app = await startAppProcess(env);
    const token = (await readFile(path.join(dir, 'admin-token'), 'utf8')).trim();
    const flips = 20;
    const answers = await Promise.all(
      Array.from({ length: flips }, (_, i) =>
        fetch(`${app.url}/api/flags/${KILL_SWITCH}`, {
          method: 'PATCH',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-actor': `burst-${i}` },
          body: JSON.stringify({ variants: { [`burst${i}`]: false } }),
        }).then((response) => response.status),
      ),
    );
    expect(answers.every((status) => status === 200)).toBe(true);
    expect((await app.stop('SIGTERM')).code).toBe(0);
    const lines = (await readFile(path.join(dir, 'flags.audit.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    const noted = new Set(lines.map((entry) => entry.actor?.note));
    for (let i = 0; i < flips; i++) expect(noted.has(`burst-${i}`)).toBe(true);
  });

  it('a second instance with the same defaults starts (its simulator elsewhere); a PORT taken is one line naming PORT', async () => {
    // Both on one SIMULATOR_PORT, as two `npm start` with the defaults are (3001).
    const simulatorPort = String(await freePort());
    const first = await startAppProcess({ ...env, SIMULATOR_PORT: simulatorPort });
    const second = await startAppProcess({ ...env, SIMULATOR_PORT: simulatorPort });
    try {
      expect(second.logs.some((entry) => /SIMULATOR_PORT \d+ is in use/.test(entry.msg))).toBe(true);
      for (const app of [first, second]) expect((await fetch(`${app.url}/?user=maya`)).status).toBe(200);
      const port = new URL(first.url).port;
      const third = await runToEnd('server/main.ts', [], { ...env, PORT: port, SIMULATOR_PORT: '0' });
      expect(third.code).toBe(1);
      expect(third.stderr.trim().split('\n')).toEqual([
        `PORT ${port} is in use on 127.0.0.1: set PORT to a free port (e.g. PORT=${Number(port) + 2} npm start).`,
      ]);
      expect(third.stdout).not.toMatch(/EADDRINUSE|\n\s+at /);
    } finally {
      await Promise.all([first.stop(), second.stop()]);
    }
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
