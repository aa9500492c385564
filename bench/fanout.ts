/**
 * Fan-out against the physical reference. For N browsers (light WebSocket clients speaking the
 * Socket.IO protocol, in two worker processes), the kill switch is flipped and the time until
 * each browser has its flag_update is measured, p50/p99, from the moment the flip request is
 * sent. Three servers, one after the other, each in its own process with its own browsers (the
 * same viewers), in the same run:
 *   bare      a bare Socket.IO server: POST /flip -> io.emit (the floor)
 *   app       this app: PATCH /api/flags/show-avatars-and-reccs (auth, validation, atomic write
 *             with fsync, audit, per-viewer push)
 *   targeted  this app, the flip being a 50 % rollout: every viewer evaluated, half get it
 * Also: server memory per connected browser (heap after GC, and RSS), against the bare server.
 * The server runs on one core (`taskset -c 0`), the browsers and this process on the other: what a
 * small container gets (BENCH_PIN=0 to leave it to the scheduler). Every round checks that every
 * browser that should get the update got it; between rounds the pages finish what a restore makes
 * them do (refetch their live region), so no round measures the previous one's traffic.
 * Each configuration is flipped WARM_UP times unmeasured, then `flips` times measured (kills and
 * restores in turn): its p50 and p99 are the medians of the flips'. Each page draws its refetch
 * moments from a generator seeded by its viewer and its place (bench/lib/client-worker.ts), so
 * every server meets the same pages refetching. `runs` repeats the whole, each run with fresh servers and browsers, and ends with
 * every run's ratios.
 *   npx tsx bench/fanout.ts [1000,2000,10000] [flips=5] [runs=1]
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { patchFlag } from '../testing/app.js';
import { Fleet, median, percentile } from './lib/fleet.js';
import { PINNED, pinToBrowserCore, startServerProcess } from './lib/pin.js';

const SIZES = (process.argv[2] ?? '1000,2000,10000').split(',').map(Number);
const FLIPS = Number(process.argv[3] ?? 5);
const RUNS = Number(process.argv[4] ?? 1);
/**
 * Unmeasured flips first (two kills, two restores): each server's first flips run code V8 has not
 * compiled yet, and so do each configuration's fresh browsers.
 */
const WARM_UP = 4;
const KEY = 'show-avatars-and-reccs';
/** Both servers' Socket.IO pingInterval: the browsers open over one, so their heartbeats are spread as real pages' are. */
const HEARTBEAT_INTERVAL_MS = 10_000;

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

/** The refetch window the app's last restore carried, by number of browsers: the bare reference's restores carry the same. */
const appWindowMs = new Map<number, number>();

async function trigger(mode: string, url: string, flip: number, n: number): Promise<void> {
  const kill = flip % 2 === 0;
  if (mode === 'bare') {
    const windowMs = appWindowMs.get(n);
    await fetch(`${url}/flip?value=${!kill}${windowMs ? `&windowMs=${windowMs}` : ''}`, { method: 'POST' }).then((r) =>
      r.text(),
    );
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
    JSON.stringify(
      { at: new Date().toISOString(), flips: FLIPS, warmUp: WARM_UP, runs: RUNS, pinned: PINNED, rows },
      null,
      2,
    ) + '\n',
  );
};

interface Row {
  run: number;
  n: number;
  mode: string;
  p50: number;
  p99: number;
  receivers: number;
  heapPerBrowser: number;
  rssPerBrowser: number;
}
const rows: Row[] = [];
/** BENCH_TRACE=1: every measured flip's steps, by size and server, over all runs. */
const allTraces = new Map<string, { step: string; ms: number }[][]>();

/** The median time of each step over the flips: one flip's path, each step's end. */
function medianTrace(traces: { step: string; ms: number }[][]): string {
  const names = [...new Set(traces.flat().map(({ step }) => step))];
  const medianOf = (name: string) =>
    median(traces.map((steps) => steps.find((s) => s.step === name)?.ms).filter((ms) => ms !== undefined));
  return names
    .map((name) => ({ name, ms: medianOf(name) }))
    .sort((a, b) => a.ms - b.ms)
    .map(({ name, ms }) => `${name} +${ms.toFixed(2)}`)
    .join(' | ');
}

/** One server under test and its browsers, in one run: its flips' figures as they come. */
interface Configuration {
  mode: string;
  n: number;
  server: { child: ChildProcess; url: string };
  fleet: Fleet;
  before: { heapUsed: number; rss: number };
  after: { heapUsed: number; rss: number };
  p50s: number[];
  p99s: number[];
  /** BENCH_TRACE=1: each measured flip's steps, for the median trace of this configuration. */
  traces: { step: string; ms: number }[][];
  receivers: number;
}

async function startConfiguration(mode: string, n: number): Promise<Configuration> {
  const server = await startServer(mode);
  await sleep(300);
  const before = await memory(server.child);
  const fleet = await Fleet.connect(
    server.url,
    Array.from({ length: n }, (_, i) => `viewer-${i}`),
    2,
    { spreadMs: HEARTBEAT_INTERVAL_MS },
  );
  await sleep(500);
  const after = await memory(server.child);
  return { mode, n, server, fleet, before, after, p50s: [], p99s: [], traces: [], receivers: 0 };
}

async function flipOnce(configuration: Configuration, flip: number): Promise<void> {
  const { mode, n, server, fleet } = configuration;
  const measured = flip >= WARM_UP;
  await fleet.collect();
  // Every browser gets a kill or a restore; a 50 % rollout reaches about half of them, so its
  // arrival ends when none has come for 300 ms.
  const { latencies, heartbeats, gcMs } = await fleet.timeFlip(() => trigger(mode, server.url, flip, n), {
    every: mode !== 'targeted',
  });
  const { requests, windowMs } = await fleet.collect();
  if (mode === 'app' && windowMs) appWindowMs.set(n, windowMs);
  const expected = mode === 'targeted' ? [0.4 * n, 0.6 * n] : [n, n];
  if (latencies.length < expected[0]! || latencies.length > expected[1]!)
    throw new Error(`${mode} flip ${flip}: ${latencies.length} of ${n} browsers got the update`);
  const kind = flip % 2 === 0 ? 'kill' : 'restore';
  // BENCH_VERBOSE=1: each flip's own figures (kills and restores apart).
  if (process.env.BENCH_VERBOSE)
    console.log(
      `  N=${n} ${mode} flip ${flip} (${kind}${measured ? '' : ', warm-up'}): p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, ${requests.fragments + requests.waits} fragment requests answered and ${heartbeats} heartbeats while it arrived, the browsers' GC ${gcMs.toFixed(1)} ms${windowMs ? `, refetch window ${(windowMs / 1000).toFixed(1)} s` : ''}`,
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
    if (measured) configuration.traces.push(t.steps);
  }
  if (measured) {
    configuration.p50s.push(percentile(latencies, 50));
    configuration.p99s.push(percentile(latencies, 99));
  }
  configuration.receivers = latencies.length;
  // A restore makes every page fetch its live region, paced by the third party: let them
  // finish, and the server go quiet (its GC's background work done), so that no flip
  // measures the previous one's work. The same for every server. (A forced GC here would
  // flush warm code and make every server's next flip slower, the bare one's too.)
  await fleet.settled();
  await sleep(1000);
}

async function finish(configuration: Configuration, run: number): Promise<void> {
  const { mode, n, server, fleet, before, after, traces, receivers } = configuration;
  const row: Row = {
    run,
    n,
    mode,
    p50: median(configuration.p50s),
    p99: median(configuration.p99s),
    receivers,
    heapPerBrowser: (after.heapUsed - before.heapUsed) / n,
    rssPerBrowser: (after.rss - before.rss) / n,
  };
  rows.push(row);
  if (traces.length > 0) {
    console.log(`  run ${run} N=${n} ${mode} median trace (ms from the request's arrival): ${medianTrace(traces)}`);
    allTraces.set(`${n} ${mode}`, [...(allTraces.get(`${n} ${mode}`) ?? []), ...traces]);
  }
  console.log(
    `run ${run} N=${String(n).padStart(5)} ${mode.padEnd(9)} p50 ${row.p50.toFixed(1).padStart(6)} ms  p99 ${row.p99.toFixed(1).padStart(6)} ms  (${receivers} receive)  heap ${(row.heapPerBrowser / 1024).toFixed(1)} KB/browser  rss ${(row.rssPerBrowser / 1024).toFixed(1)} KB/browser`,
  );
  await fleet.close();
  // SIGTERM-free exit through process.exit, so that --cpu-prof writes its profile.
  server.child.send({ type: 'exit' });
  await once(server.child, 'exit');
}

// One server at a time on its core, as a deployment runs it. Side by side, taking turns, the two
// servers evicted each other's code and data from the core's caches between flips: the app's first
// write came 5.5 ms after the request against 3.4 ms alone (2026-12-08, at 2,000). The app runs
// first, so that the reference's restores carry the app's refetch window.
const MODES = (process.env.BENCH_MODES ?? 'app,bare,targeted').split(',');
for (let run = 1; run <= RUNS; run++) {
  for (const n of SIZES) {
    for (const mode of MODES) {
      const configuration = await startConfiguration(mode, n);
      for (let flip = 0; flip < WARM_UP + FLIPS; flip++) await flipOnce(configuration, flip);
      await finish(configuration, run);
      await save(); // after each row: a run cut short keeps what it measured
    }
  }
}

console.log(
  `\n${PINNED ? 'server pinned to core 0, browsers on core 1' : 'unpinned'}; ratios to the bare broadcast (target: p99 and memory within 1.2x)`,
);
for (const row of rows) {
  const bare = rows.find((r) => r.run === row.run && r.n === row.n && r.mode === 'bare');
  if (!bare || row === bare) continue;
  console.log(
    `run ${row.run} N=${String(row.n).padStart(5)} ${row.mode.padEnd(9)} p99 ${row.p99.toFixed(1)} / ${bare.p99.toFixed(1)} ms = ${(row.p99 / bare.p99).toFixed(2)}x   p50 ${row.p50.toFixed(1)} / ${bare.p50.toFixed(1)} ms   heap/browser ${(row.heapPerBrowser / bare.heapPerBrowser).toFixed(2)}x   rss/browser ${(row.rssPerBrowser / bare.rssPerBrowser).toFixed(2)}x`,
  );
}
for (const [configuration, traces] of allTraces)
  console.log(`N=${configuration}, ${traces.length} flips over ${RUNS} run(s), median trace: ${medianTrace(traces)}`);
await save();
