/**
 * Page latency under each third-party fault, and third-party calls for 1,000 page views of 100
 * people. The app and its simulator run in this process; requests go over loopback, 10 page views
 * at a time. A page view is what a browser does: GET /, and when the page came out live but short
 * (the third party at capacity), its turns followed with the page's own policy until it is whole.
 *   npx tsx bench/faults.ts
 */
import { KILL_SWITCH } from '../server/flags/catalog.js';
import type { SimulatorMode } from '../server/simulator/simulator.js';
import { startBenchApp } from '../testing/app.js';
import { percentile } from './lib/fleet.js';
import { loadPage } from '../testing/light-page.js';

const TIMEOUT = 800;
const app = await startBenchApp({ UPSTREAM_TIMEOUT_MS: String(TIMEOUT), SIMULATOR_LATENCY_MS: '60' });
const sim = app.simulator!;

async function pageViews(count: number, viewerOf: (i: number) => string, concurrency = 10, url = app.url) {
  const loads: number[] = [];
  const wholes: number[] = [];
  let next = 0;
  let errors = 0;
  let short = 0;
  let turns = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const view = await loadPage(url, viewerOf(next++));
        if (view.status !== 200) errors++;
        if (view.page.requests.fragments + view.page.requests.waits > 0) short++;
        turns += view.page.requests.fragments + view.page.requests.waits;
        loads.push(view.loadMs);
        wholes.push(view.wholeMs);
      }
    }),
  );
  loads.sort((a, b) => a - b);
  wholes.sort((a, b) => a - b);
  return {
    p50: percentile(loads, 50),
    p99: percentile(loads, 99),
    max: loads.at(-1)!,
    wholeP99: percentile(wholes, 99),
    short,
    turns,
    errors,
  };
}

console.log(
  `page latency under third-party faults (UPSTREAM_TIMEOUT_MS=${TIMEOUT}, 200 page views each, 10 at a time, new viewers)`,
);
console.log('mode      p50 ms   p99 ms   max ms   non-200   short pages (turns followed)   done p99 ms');
let round = 0;
for (const mode of ['normal', 'hang', 'fail', 'garbage', 'slow'] as SimulatorMode[]) {
  sim.setKnobs({ mode });
  // Fresh viewers, and the breaker given time to close between modes (it opens under faults).
  round++;
  const r = await pageViews(200, (i) => `fault-${round}-${i}`);
  console.log(
    `${mode.padEnd(9)} ${r.p50.toFixed(0).padStart(6)}   ${r.p99.toFixed(0).padStart(6)}   ${r.max.toFixed(0).padStart(6)}   ${String(r.errors).padStart(7)}   ${`${r.short} (${r.turns})`.padStart(28)}   ${r.wholeP99.toFixed(0).padStart(11)}`,
  );
  sim.setKnobs({ mode: 'normal' });
  await new Promise((resolve) => setTimeout(resolve, 5500));
}

// The call counts on a fresh app: the faults above leave breakers open or half-open, and a page
// rendered meanwhile makes no call (it shows the fallbacks), which would be counted as "fewer calls".
await app.stop();
const fresh = await startBenchApp({ UPSTREAM_TIMEOUT_MS: String(TIMEOUT), SIMULATOR_LATENCY_MS: '60' });
const freshSim = fresh.simulator!;
const pageViewsOf = (count: number, viewerOf: (i: number) => string) => pageViews(count, viewerOf, 10, fresh.url);
const liveViews = await pageViewsOf(1000, (i) => `person-${i % 100}`);
const live = freshSim.stats().requests;
console.log(
  `1,000 page views of 100 people, live: ${live.avatars + live.recommendations} third-party calls (${live.avatars} avatars, ${live.recommendations} recommendations); ` +
    `${liveViews.short} pages came out short and followed ${liveViews.turns} turns; page p50/p99 ${liveViews.p50.toFixed(0)}/${liveViews.p99.toFixed(0)} ms`,
);
await fresh.patch(KILL_SWITCH, { state: 'DISABLED' });
freshSim.resetStats();
await pageViewsOf(1000, (i) => `person-${i % 100}`);
console.log(`1,000 page views of 100 people, killed: ${freshSim.stats().total} third-party calls`);
await fresh.stop();
