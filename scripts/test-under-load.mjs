#!/usr/bin/env node
/**
 * The suite's reliability check: runs `npm test` N times in a row (default 5) with two busy
 * loops beside it (one per core of a 2-core machine), and prints each run's result, its
 * duration, and its slowest tests against their timeouts.
 *   npm run test:load [-- runs]
 * Exits non-zero when any run fails or any test took more than half its timeout.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const runs = Number(process.argv[2] ?? 5);
const DEFAULT_TIMEOUT_MS = 30_000;
// Tests that set a timeout of their own (vitest's JSON report does not carry it).
const OWN_TIMEOUTS = {
  '10 SIGKILLs': 120_000,
  '50 writers with If-Match': 90_000,
  'after every random edit': 60_000,
  'concurrent If-Match writers on both': 60_000,
};
// Files whose describe blocks set a timeout for each of their tests.
const FILE_TIMEOUTS = {
  'test/integration/access.test.ts': 60_000,
  'test/integration/admin-sessions.test.ts': 60_000,
  'test/integration/process.test.ts': 90_000,
};
// The browser tests' describe blocks set this for each of their tests.
const BROWSER_TIMEOUT_MS = 90_000;

const busy = [0, 1].map(() => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
const stopBusy = () => busy.forEach((child) => child.kill('SIGKILL'));
process.on('exit', stopBusy);

let bad = 0;
for (let run = 1; run <= runs; run++) {
  const dir = mkdtempSync(path.join(tmpdir(), 'test-load-'));
  const out = path.join(dir, 'report.json');
  const started = performance.now();
  // The JSON report for the figures; vitest's own report too, kept, for what JSON leaves out (an
  // error in a hook, an unhandled rejection): printed when a run fails.
  const result = spawnSync(
    'npx',
    ['vitest', 'run', '--reporter=json', `--outputFile.json=${out}`, '--reporter=default'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  writeFileSync(path.join(dir, 'vitest.log'), `${result.stdout}\n${result.stderr}`);
  const seconds = (performance.now() - started) / 1000;
  const report = JSON.parse(readFileSync(out, 'utf8'));
  const tests = report.testResults.flatMap((file) =>
    file.assertionResults.map((t) => ({ ...t, file: path.relative(process.cwd(), file.name) })),
  );
  const timeoutOf = (t) =>
    Object.entries(OWN_TIMEOUTS).find(([name]) => t.title.includes(name))?.[1] ??
    FILE_TIMEOUTS[t.file] ??
    (t.file.startsWith('test/browser/') ? BROWSER_TIMEOUT_MS : DEFAULT_TIMEOUT_MS);
  const ratioOf = (t) => t.duration / timeoutOf(t);
  const slowest = [...tests].sort((a, b) => ratioOf(b) - ratioOf(a)).slice(0, 3);
  const failed = tests.filter((t) => t.status !== 'passed');
  const tooSlow = tests.filter((t) => ratioOf(t) > 0.5);
  if (result.status !== 0 || failed.length || tooSlow.length) bad++;
  console.log(
    `run ${run}/${runs}: ${result.status === 0 ? 'passed' : 'FAILED'} ${report.numPassedTests}/${report.numTotalTests} in ${seconds.toFixed(1)} s; slowest: ` +
      slowest
        .map(
          (t) =>
            `${(t.duration / 1000).toFixed(1)} s (${Math.round(ratioOf(t) * 100)}% of its timeout) ${t.title.slice(0, 60)}`,
        )
        .join(' | '),
  );
  for (const t of failed) console.log(`  failed: ${t.file} > ${t.fullName}`);
  if (result.status !== 0) {
    // The terminal's colour codes (ESC [ ... m) out of vitest's output.
    // eslint-disable-next-line no-control-regex
    const log = String(result.stdout).replace(/\x1b\[[0-9;]*m/g, '');
    const from = log.search(/⎯+ (Failed|Unhandled)/);
    console.log(from >= 0 ? log.slice(from, from + 6000) : `  (vitest's report: ${path.join(dir, 'vitest.log')})`);
  }
}
stopBusy();
console.log(
  bad
    ? `${bad} of ${runs} runs failed or had a test over half its timeout`
    : `${runs} of ${runs} runs passed, every test within half its timeout`,
);
process.exit(bad ? 1 : 0);
