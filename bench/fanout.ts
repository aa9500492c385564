/**
 * Fan-out against the physical reference. For N browsers (light WebSocket clients speaking the
 * Socket.IO protocol, in two worker processes), the kill switch is flipped and the time until
 * each browser has its flag_update is measured, p50/p99, from the moment the flip request is
 * sent. Three servers, each in its own process, the same clients, the same run:
 *   bare      a bare Socket.IO server: POST /flip -> io.emit (the floor)
 *   app       this app: PATCH /api/flags/show-avatars-and-reccs (auth, validation, atomic write
 *             with fsync, audit, per-viewer push)
 *   targeted  this app, the flip being a 50 % rollout: every viewer evaluated, half get it
 * Also: server memory per connected browser (heap after GC, and RSS), against the bare server.
 * The server runs on one core (`taskset -c 0`), the browsers and this process on the other: what a
 * small container gets (BENCH_PIN=0 to leave it to the scheduler). Every round checks that every
 * browser that should get the update got it; between rounds the pages finish what a restore makes
 * them do (refetch their live region), so no round measures the previous one's traffic.
 *   npx tsx bench/fanout.ts [1000,2000,10000] [rounds=7]
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { patchFlag } from '../testing/app.js';
import { Fleet, median, percentile, wallClock } from './lib/fleet.js';
import { PINNED, pinToBrowserCore, startServerProcess } from './lib/pin.js';

const SIZES = (process.argv[2] ?? '1000,2000,10000').split(',').map(Number);
const ROUNDS = Number(process.argv[3] ?? 7);
const KEY = 'show-avatars-and-reccs';

pinToBrowserCore(); // this process with the browsers

function startServer(mode: string): Promise<{ child: ChildProcess; url: string }> {
  // BENCH_CPU_PROF=1: a V8 CPU profile of each server, in bench/results/profiles/<mode>-<time>/.
  // A folder per server and Node's own file names: each thread writes one (the server's, and tsx's
  // module-hooks thread), and with one fixed --cpu-prof-name the hooks thread's overwrote the server's.
  const profile = process.env.BENCH_CPU_PROF
    ? [
        '--cpu-prof',
        `--cpu-prof-dir=${fileURLToPath(new URL(`./results/profiles/${mode}-${Date.now()}/`, import.meta.url))}`,
      ]
    : [];
  return startServerProcess([mode], profile);
}

async function memory(child: ChildProcess): Promise<{ heapUsed: number; rss: number }> {
  const reply = once(child, 'message');
  child.send({ type: 'memory' });
  return (await reply)[0] as { heapUsed: number; rss: number };
}

async function trigger(mode: string, url: string, round: number): Promise<void> {
  const kill = round % 2 === 0;
  if (mode === 'bare') {
    await fetch(`${url}/flip?value=${!kill}`, { method: 'POST' }).then((r) => r.text());
    return;
  }
  const body =
    mode === 'app'
      ? { state: kill ? 'DISABLED' : 'ENABLED' }
      : {
          targeting: kill
            ? {
                fractional: [
                  ['off', 50],
                  ['on', 50],
                ],
              }
            : null,
        };
  await patchFlag(url, KEY, body);
}

const save = async () => {
  await mkdir(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
  await writeFile(
    fileURLToPath(new URL('./results/fanout.json', import.meta.url)),
    JSON.stringify({ at: new Date().toISOString(), rounds: ROUNDS, pinned: PINNED, rows }, null, 2) + '\n',
  );
};

interface Row {
  n: number;
  mode: string;
  p50: number;
  p99: number;
  receivers: number;
  heapPerBrowser: number;
  rssPerBrowser: number;
}
const rows: Row[] = [];

const MODES = (process.env.BENCH_MODES ?? 'bare,app,targeted').split(',');
for (const n of SIZES) {
  for (const mode of MODES) {
    const server = await startServer(mode);
    await sleep(300);
    const before = await memory(server.child);
    const fleet = await Fleet.connect(
      server.url,
      Array.from({ length: n }, (_, i) => `viewer-${i}`),
      2,
    );
    await sleep(500);
    const after = await memory(server.child);
    const p50s: number[] = [];
    const p99s: number[] = [];
    /** BENCH_TRACE=1: each flip's steps, for the median trace of this configuration. */
    const traces: { step: string; ms: number }[][] = [];
    let receivers = 0;
    for (let round = 0; round < ROUNDS * 2; round++) {
      await fleet.collect();
      const sent = wallClock();
      await trigger(mode, server.url, round);
      // Wait until no new update has arrived for 300 ms (the targeted flip reaches about half).
      let times: number[] = [];
      let quietSince = Date.now();
      // Fragments the pages fetched (a restore's refetches) while the update was still arriving.
      let fetchedMeanwhile = 0;
      let fetchedSoFar = 0;
      let windowMs = 0;
      while (Date.now() - quietSince < 300) {
        await sleep(25);
        const received = await fleet.collect();
        const got = received.times.flat();
        fetchedSoFar += received.requests.fragments + received.requests.waits;
        windowMs = Math.max(windowMs, received.windowMs);
        if (got.length > 0) {
          quietSince = Date.now();
          fetchedMeanwhile = fetchedSoFar;
        }
        times = times.concat(got);
      }
      // Every browser gets a kill or restore; a 50 % rollout reaches about half of them.
      const expected = mode === 'targeted' ? [0.4 * n, 0.6 * n] : [n, n];
      if (times.length < expected[0]! || times.length > expected[1]!)
        throw new Error(`${mode} round ${round}: ${times.length} of ${n} browsers got the update`);
      const latencies = times.map((t) => t - sent).sort((a, b) => a - b);
      p50s.push(percentile(latencies, 50));
      p99s.push(percentile(latencies, 99));
      // BENCH_VERBOSE=1: each flip's own figures (kills and restores apart).
      if (process.env.BENCH_VERBOSE)
        console.log(
          `  N=${n} ${mode} round ${round} (${round % 2 === 0 ? 'kill' : 'restore'}): p50 ${p50s.at(-1)!.toFixed(1)} ms, p99 ${p99s.at(-1)!.toFixed(1)} ms, ${fetchedMeanwhile} fragment requests answered while it arrived${windowMs ? `, refetch window ${(windowMs / 1000).toFixed(1)} s` : ''}`,
        );
      // BENCH_TRACE=1: the server's side (its request's arrival to its first, middle and last socket write).
      if (process.env.BENCH_TRACE) {
        const reply = once(server.child, 'message');
        server.child.send({ type: 'trace', browsers: n });
        const [t] = (await reply) as [
          {
            writes: number;
            first: number;
            middle: number;
            last: number;
            gcs: number;
            gcMs: number;
            majorMs: number;
            steps: { step: string; ms: number }[];
          },
        ];
        console.log(
          `    server: ${t.writes} writes, first ${t.first.toFixed(1)} ms, middle ${t.middle.toFixed(1)} ms, last ${t.last.toFixed(1)} ms after the request arrived; ${t.gcs} GC pauses meanwhile, ${t.gcMs.toFixed(1)} ms (${t.majorMs.toFixed(1)} ms mark-compact)`,
        );
        // The flip's own steps, from the request's arrival (the app: server/observability/flip-trace.ts).
        if (t.steps.length > 1)
          console.log(`    steps: ${t.steps.map(({ step, ms }) => `${step} +${ms.toFixed(2)}`).join(' | ')}`);
        traces.push(t.steps);
      }
      receivers = times.length;
      // A restore makes every page fetch its live region, paced by the third party: let them
      // finish, and the server go quiet (its GC's background work done), so that no round
      // measures the previous one's work. The same for every server. (A forced GC here would
      // flush warm code and make every server's next flip slower, the bare one's too.)
      await fleet.settled();
      await sleep(1000);
    }
    const row: Row = {
      n,
      mode,
      p50: median(p50s),
      p99: median(p99s),
      receivers,
      heapPerBrowser: (after.heapUsed - before.heapUsed) / n,
      rssPerBrowser: (after.rss - before.rss) / n,
    };
    rows.push(row);
    if (traces.length > 0) {
      // The median time of each step over the flips: one flip's path, each step's end.
      const names = [...new Set(traces.flat().map(({ step }) => step))];
      const medianOf = (name: string) =>
        median(traces.map((steps) => steps.find((s) => s.step === name)?.ms).filter((ms) => ms !== undefined));
      const line = names
        .map((name) => ({ name, ms: medianOf(name) }))
        .sort((a, b) => a.ms - b.ms)
        .map(({ name, ms }) => `${name} +${ms.toFixed(2)}`)
        .join(' | ');
      console.log(`  N=${n} ${mode} median trace (ms from the request's arrival): ${line}`);
    }
    console.log(
      `N=${String(n).padStart(5)} ${mode.padEnd(9)} p50 ${row.p50.toFixed(1).padStart(6)} ms  p99 ${row.p99.toFixed(1).padStart(6)} ms  (${receivers} receive)  heap ${(row.heapPerBrowser / 1024).toFixed(1)} KB/browser  rss ${(row.rssPerBrowser / 1024).toFixed(1)} KB/browser`,
    );
    await fleet.close();
    await save(); // after each row: a run cut short keeps what it measured
    // SIGTERM-free exit through process.exit, so that --cpu-prof writes its profile.
    server.child.send({ type: 'exit' });
    await once(server.child, 'exit');
  }
}

console.log(
  `\n${PINNED ? 'server pinned to core 0, browsers on core 1' : 'unpinned'}; ratios to the bare broadcast (target: p99 and memory within 1.2x)`,
);
for (const n of SIZES) {
  const bare = rows.find((r) => r.n === n && r.mode === 'bare');
  for (const mode of ['app', 'targeted']) {
    const row = rows.find((r) => r.n === n && r.mode === mode);
    if (!bare || !row) continue;
    console.log(
      `N=${String(n).padStart(5)} ${mode.padEnd(9)} p99 ${(row.p99 / bare.p99).toFixed(2)}x   heap/browser ${(row.heapPerBrowser / bare.heapPerBrowser).toFixed(2)}x   rss/browser ${(row.rssPerBrowser / bare.rssPerBrowser).toFixed(2)}x`,
    );
  }
}
await save();
