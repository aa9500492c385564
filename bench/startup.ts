/**
 * What a new user waits for, with the defaults (no variables but a free PORT, a fresh flag
 * folder, SIMULATOR_PORT 0 so that runs never collide):
 *   start to ready     `node dist/server/main.js` spawned -> GET /readyz answers 200 (median of 5)
 *   npm start, cold    a fresh clone, `npm ci` done, no dist/: `npm start` -> /readyz 200 (the
 *                      prestart `tsc` build included)
 *   npm start, again   the same clone, dist/ present: `npm start` -> /readyz 200
 *   npm ci             a fresh clone of this checkout's HEAD: `npm ci --no-audit --no-fund`, npm's
 *                      cache as this machine has it
 *   npx tsx bench/startup.ts
 * Writes bench/results/startup.json.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { median } from './lib/fleet.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Starts `command` in `cwd` with a fresh flag folder; resolves with the ms until /readyz is 200. */
async function startToReady(command: string, args: string[], cwd: string): Promise<number> {
  const dir = await mkdtemp(path.join(tmpdir(), 'startup-'));
  const started = performance.now();
  const child = spawn(command, args, {
    cwd,
    env: {
      ...process.env,
      PORT: '0',
      SIMULATOR_PORT: '0',
      FLAGS_FILE: path.join(dir, 'flags.json'),
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true, // its own process group: npm's child goes down with it
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  try {
    // The app says where it listens (PORT=0 picks a free port), then /readyz is polled.
    let url: string | undefined;
    while (!url) {
      if (child.exitCode !== null) throw new Error(`${command} exited: ${output}`);
      url = /"url":"(http:[^"]+)"/.exec(output)?.[1];
      if (!url) await sleep(5);
    }
    for (;;) {
      const ready = await fetch(`${url}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ready) return performance.now() - started;
      await sleep(5);
    }
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(-child.pid!, 'SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  }
}

function timed(command: string, args: string[], cwd: string): number {
  const started = performance.now();
  const result = spawnSync(command, args, { cwd, stdio: 'ignore' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed in ${cwd}`);
  return performance.now() - started;
}

const seconds = (ms: number) => Math.round(ms / 10) / 100;

// Start to ready, from this checkout's build.
timed('npm', ['run', 'build', '--silent'], ROOT);
const starts: number[] = [];
for (let i = 0; i < 5; i++) starts.push(await startToReady(process.execPath, ['dist/server/main.js'], ROOT));

// A fresh clone: npm ci, then npm start twice.
const clone = await mkdtemp(path.join(tmpdir(), 'startup-clone-'));
try {
  timed('git', ['clone', '--quiet', ROOT, clone], ROOT);
  const npmCi = timed('npm', ['ci', '--no-audit', '--no-fund'], clone);
  const cold = await startToReady('npm', ['start', '--silent'], clone);
  const again = await startToReady('npm', ['start', '--silent'], clone);

  const results = {
    at: new Date().toISOString(),
    startToReadyMs: median(starts),
    runsMs: starts.map(Math.round),
    npmStartColdMs: Math.round(cold),
    npmStartAgainMs: Math.round(again),
    npmCiMs: Math.round(npmCi),
  };
  console.log(
    `start to ready (node dist/server/main.js -> /readyz 200): ${seconds(results.startToReadyMs)} s, median of 5 (${starts.map((ms) => seconds(ms)).join(', ')})`,
  );
  console.log(
    `npm start on a fresh clone -> /readyz 200: ${seconds(cold)} s cold (tsc build included), ${seconds(again)} s again`,
  );
  console.log(`npm ci on a fresh clone: ${seconds(npmCi)} s`);
  await mkdir(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
  await writeFile(
    fileURLToPath(new URL('./results/startup.json', import.meta.url)),
    JSON.stringify(results, null, 2) + '\n',
  );
} finally {
  await rm(clone, { recursive: true, force: true });
}
