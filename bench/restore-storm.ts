/**
 * A flip at launch scale: N open pages of N distinct viewers (no cache to hide behind), each a
 * light browser running the page's own policy (public/js/live-sync.js), against the app in a
 * process of its own with the defaults a user gets (UPSTREAM_MAX_CONCURRENCY=32, the built-in
 * third party at ~120 ms).
 *
 *   kill storm       the switch is killed with every page live. Measured: the requests the pages
 *                    make to our server afterwards (the page holds the killed state: 0), and a
 *                    new viewer's page time (p50/p99) in the 3 s before and the 3 s after the kill.
 *   restore          the switch is restored with every page killed. Measured: the time until every
 *                    page is live and whole (live recommendations, every avatar live) against the
 *                    time the third party's capacity needs (pages x calls per page x latency / cap,
 *                    per service), the third party's peak calls in flight per service (the cap is
 *                    32), the turns handed out, failures, the breakers, and a new viewer's page time
 *                    meanwhile.
 *
 *   npx tsx bench/restore-storm.ts [pages=1000,5000,10000]
 * Writes bench/results/restore-storm.json.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { KILL_SWITCH } from '../server/flags/catalog.js';
import type { SimulatorStats } from '../server/simulator/simulator.js';
import { patchFlag } from '../testing/app.js';
import { Fleet, percentile, wallClock } from './lib/fleet.js';
import { loadPage } from '../testing/light-page.js';
import { PINNED, pinToBrowserCore, startServerProcess } from './lib/pin.js';

pinToBrowserCore(); // the pages and this process on core 1, the app on core 0

const SIZES = (process.argv[2] ?? '1000,5000,10000').split(',').map(Number);
const CAP = 32;
const LATENCY_MS = 120;

async function ask<T>(child: ChildProcess, message: object): Promise<T> {
  const reply = once(child, 'message');
  child.send(message);
  return (await reply)[0] as T;
}

async function flip(url: string, state: 'ENABLED' | 'DISABLED') {
  await patchFlag(url, KILL_SWITCH, { state });
}

/**
 * New viewers loading the page, one every 50 ms, for `ms`, each as a browser does it (a page that
 * comes out short follows its turns): their page times and the times until their page was whole
 * (live content in place), sorted.
 */
async function newViewerPages(url: string, tag: string, ms: number): Promise<{ load: number[]; whole: number[] }> {
  const load: number[] = [];
  const whole: number[] = [];
  const pending: Promise<void>[] = [];
  const until = performance.now() + ms;
  for (let i = 0; performance.now() < until; i++) {
    pending.push(
      (async () => {
        const view = await loadPage(url, `${tag}-${i}`);
        if (view.status !== 200) throw new Error(`new viewer page: ${view.status}`);
        load.push(view.loadMs);
        if (view.page.content() !== 'short') whole.push(view.wholeMs);
      })(),
    );
    await sleep(50);
  }
  await Promise.all(pending);
  return { load: load.sort((a, b) => a - b), whole: whole.sort((a, b) => a - b) };
}

const round = (value: number) => Math.round(value * 10) / 10;
const summary = (times: number[]) => ({
  p50: round(percentile(times, 50)),
  p99: round(percentile(times, 99)),
  n: times.length,
});

async function run(pages: number) {
  const { child, url } = await startServerProcess(['app', JSON.stringify({})]);
  // The pages yield to the new viewer's probe on their shared core: the probe times our server.
  const fleet = await Fleet.connect(
    url,
    Array.from({ length: pages }, (_, i) => `storm-${i}`),
    2,
    { nice: 10 },
  );

  // Kill storm: every page live, then killed.
  await fleet.collect();
  const beforeKill = newViewerPages(url, 'before-kill', 3000);
  await beforeKill;
  const duringKill = newViewerPages(url, 'during-kill', 3000);
  await flip(url, 'DISABLED');
  const killTimes = await duringKill;
  await sleep(500);
  const afterKill = await fleet.collect();
  const killState = await fleet.state();

  // Restore: every page killed, then restored.
  await ask(child, { type: 'simulator', reset: true });
  const restoredAt = wallClock();
  await flip(url, 'ENABLED');
  const duringRestore = newViewerPages(url, 'during-restore', 3000);
  let state = await fleet.state();
  const deadline = restoredAt + 10 * 60_000;
  while (state.live < pages && wallClock() < deadline) {
    await sleep(250);
    state = await fleet.state();
  }
  const restoreTimes = await duringRestore;
  const allLiveMs = state.lastLiveAt - restoredAt;
  const requests = (await fleet.collect()).requests;
  const { stats } = await ask<{ stats: SimulatorStats }>(child, { type: 'simulator' });
  const { states: breakers } = await ask<{ states: string[] }>(child, { type: 'breakers' });
  await fleet.close();
  child.send({ type: 'exit' });

  // What the third party's capacity needs: each page needs its viewer's avatar and recommendations
  // (one call each, per service), the authors' avatars once; per service cap calls at a time.
  const capacityMs = (Math.max(stats.requests.avatars, stats.requests.recommendations) * LATENCY_MS) / CAP;
  return {
    pages,
    kill: {
      requestsAfterKill: afterKill.requests.fragments + afterKill.requests.waits + afterKill.requests.failures,
      pagesKilled: killState.killed,
      newViewerBefore: summary((await beforeKill).load),
      newViewerDuring: summary(killTimes.load),
    },
    restore: {
      allLiveMs: Math.round(allLiveMs),
      capacityMs: Math.round(capacityMs),
      pagesLive: state.live,
      pagesShort: state.short,
      calls: { avatars: stats.requests.avatars, recommendations: stats.requests.recommendations },
      peakInFlight: { avatars: stats.peakInFlightBy.avatars, recommendations: stats.peakInFlightBy.recommendations },
      fragments: requests.fragments,
      turns: requests.waits,
      failures: requests.failures,
      breakers,
      newViewerDuring: summary(restoreTimes.load),
      // A new viewer's page during a restore comes at once, and fills in on a turn of its own.
      newViewerWhole: summary(restoreTimes.whole),
    },
  };
}

const results = [];
console.log(
  `flip at launch scale: pages of distinct viewers, UPSTREAM_MAX_CONCURRENCY=${CAP} per service, third party ~${LATENCY_MS} ms, ${PINNED ? 'app pinned to core 0, pages on core 1' : 'unpinned'}`,
);
for (const pages of SIZES) {
  const r = await run(pages);
  results.push(r);
  const k = r.kill;
  const s = r.restore;
  console.log(
    `${String(pages).padStart(6)} pages | kill: ${k.requestsAfterKill} requests from pages, new viewer p99 ${k.newViewerBefore.p99} -> ${k.newViewerDuring.p99} ms (${(k.newViewerDuring.p99 / k.newViewerBefore.p99).toFixed(2)}x)` +
      ` | restore: all ${s.pagesLive}/${pages} live in ${(s.allLiveMs / 1000).toFixed(1)} s (capacity needs ${(s.capacityMs / 1000).toFixed(1)} s),` +
      ` peak in flight ${s.peakInFlight.avatars}/${s.peakInFlight.recommendations} (cap ${CAP}), ${s.turns} turns, ${s.failures} failures, breakers ${s.breakers.join('/')}, new viewer p99 ${s.newViewerDuring.p99} ms (whole: p50 ${s.newViewerWhole.p50} / p99 ${s.newViewerWhole.p99} ms)`,
  );
  // After each size: a run cut short keeps what it measured.
  await mkdir(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
  await writeFile(
    fileURLToPath(new URL('./results/restore-storm.json', import.meta.url)),
    JSON.stringify(
      { at: new Date().toISOString(), cap: CAP, latencyMs: LATENCY_MS, pinned: PINNED, results },
      null,
      2,
    ) + '\n',
  );
}
