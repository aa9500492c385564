/**
 * A guarded restore at launch scale, against a plain one: N open pages of N distinct viewers (light
 * browsers running the page's own policy), the app in a process of its own on core 0 with the
 * defaults a user gets (cap 32 per service, the built-in third party at ~120 ms).
 *
 *   plain     every page killed, then restored at once (what restore-storm measures)
 *   guarded   every page killed, then a guarded restore with the default stages (10, 25, 50,
 *             100 %) and the default guard, each stage held HOLD ms
 * Each mode on a server and pages of its own (no cache warmed by the other). Measured per stage:
 * the share of pages live, the time from the stage's write until the last of them was live, and
 * whether it advanced with too few calls; in all, the time until every page was live and the
 * third party's peak calls in flight.
 *
 *   npx tsx bench/guarded-restore.ts [pages=2000] [holdMs=5000]
 * Writes bench/results/guarded-restore.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Ramp } from '../protocol/ramp.js';
import { KILL_SWITCH } from '../server/flags/catalog.js';
import type { SimulatorStats } from '../server/simulator/simulator.js';
import { BENCH_TOKEN, patchFlag } from '../testing/app.js';
import { Fleet, wallClock } from './lib/fleet.js';
import { PINNED, pinToBrowserCore, startServerProcess } from './lib/pin.js';

pinToBrowserCore();

const PAGES = Number(process.argv[2] ?? 2000);
const HOLD_MS = Number(process.argv[3] ?? 5000);
const RAMP = `/api/flags/${KILL_SWITCH}/ramp`;

async function ask<T>(child: ChildProcess, message: object): Promise<T> {
  const reply = once(child, 'message');
  child.send(message);
  return (await reply)[0] as T;
}

const api = async (url: string, init: RequestInit = {}) =>
  fetch(url + RAMP, {
    ...init,
    headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/json' },
  });

async function plain(url: string, child: ChildProcess, fleet: Fleet) {
  await ask(child, { type: 'simulator', reset: true });
  const at = wallClock();
  await patchFlag(url, KILL_SWITCH, { state: 'ENABLED' });
  let state = await fleet.state();
  while (state.live < PAGES) {
    await sleep(100);
    state = await fleet.state();
  }
  const { stats } = await ask<{ stats: SimulatorStats }>(child, { type: 'simulator' });
  return { allLiveMs: Math.round(state.lastLiveAt - at), peak: stats.peakInFlightBy };
}

async function guarded(url: string, child: ChildProcess, fleet: Fleet) {
  await ask(child, { type: 'simulator', reset: true });
  const at = wallClock();
  const started = await api(url, { method: 'POST', body: JSON.stringify({ holdMs: HOLD_MS }) });
  if (started.status !== 202) throw new Error(`ramp: ${started.status} ${await started.text()}`);
  /** Each stage: when it was written, the live count seen at each look, and when it last grew. */
  const stages: { percent: number; writtenAt: number; live: number; grewAt: number; advanced?: string }[] = [];
  let ramp = ((await started.json()) as { ramp: Ramp }).ramp;
  let state = await fleet.state();
  for (;;) {
    const current = stages.at(-1);
    if (ramp.percent > 0 && ramp.percent !== current?.percent) {
      const writtenAt = Date.parse(ramp.stageStartedAt);
      stages.push({ percent: ramp.percent, writtenAt, live: state.live, grewAt: writtenAt });
    } else if (current && state.live > current.live) {
      current.live = state.live;
      current.grewAt = wallClock();
    }
    if (ramp.status !== 'running' && state.live === PAGES) break;
    if (ramp.status !== 'running' && ramp.status !== 'completed')
      throw new Error(`ramp ${ramp.status}: ${ramp.reason}`);
    await sleep(100);
    [ramp, state] = [((await (await api(url)).json()) as { ramp: Ramp }).ramp, await fleet.state()];
  }
  const audit = (await (
    await fetch(`${url}/api/audit?limit=20`, { headers: { authorization: `Bearer ${BENCH_TOKEN}` } })
  ).json()) as { entries: { actor: { note?: string } }[] };
  const notes = audit.entries.map((entry) => entry.actor.note ?? '').filter((note) => note.startsWith('guarded'));
  const { stats } = await ask<{ stats: SimulatorStats }>(child, { type: 'simulator' });
  return {
    allLiveMs: Math.round(state.lastLiveAt - at),
    peak: stats.peakInFlightBy,
    calls: stats.requests,
    notes: notes.reverse(),
    status: ramp.status,
    stages: stages.map(({ percent, writtenAt, live, grewAt }) => ({
      percent,
      livePercent: Math.round((1000 * live) / PAGES) / 10,
      filledMs: Math.round(grewAt - writtenAt),
      // Advanced without minCalls calls: the audit note says so.
      sparse: notes.some((note) => note.includes(`live for ${percent} % (`)),
    })),
  };
}

/**
 * A server and pages of their own for each mode, killed before the pages open: nothing cached, as
 * after an outage longer than the caches (recommendations 30 s, avatars 5 min). So each restore
 * makes every call a page needs.
 */
async function measure<T>(
  tag: string,
  run: (url: string, child: ChildProcess, fleet: Fleet) => Promise<T>,
): Promise<T> {
  const { child, url } = await startServerProcess(['app', JSON.stringify({})]);
  await patchFlag(url, KILL_SWITCH, { state: 'DISABLED' });
  const fleet = await Fleet.connect(
    url,
    Array.from({ length: PAGES }, (_, i) => `${tag}-${i}`),
    2,
  );
  await fleet.collect();
  await sleep(1000);
  const result = await run(url, child, fleet);
  await fleet.close();
  child.send({ type: 'exit' });
  await once(child, 'exit');
  return result;
}
const plainRun = await measure('plain', plain);
const guardedRun = await measure('guarded', guarded);

console.log(
  `${PAGES} pages, ${PINNED ? 'app on core 0, pages on core 1' : 'unpinned'}; plain restore: all live in ${(plainRun.allLiveMs / 1000).toFixed(1)} s, peak ${plainRun.peak.avatars}/${plainRun.peak.recommendations}`,
);
console.log(
  `guarded (${HOLD_MS / 1000} s holds): ${guardedRun.status}, all live in ${(guardedRun.allLiveMs / 1000).toFixed(1)} s, peak ${guardedRun.peak.avatars}/${guardedRun.peak.recommendations}`,
);
for (const note of guardedRun.notes) console.log(`  audit: ${note}`);
console.log(`  calls made: ${JSON.stringify(guardedRun.calls)}`);
for (const stage of guardedRun.stages)
  console.log(
    `  stage ${String(stage.percent).padStart(3)} %: ${stage.livePercent} % of pages live, the last of them ${(stage.filledMs / 1000).toFixed(2)} s after the stage's write${stage.sparse ? ' (advanced with too few calls)' : ''}`,
  );
await mkdir(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
await writeFile(
  fileURLToPath(new URL('./results/guarded-restore.json', import.meta.url)),
  JSON.stringify(
    {
      at: new Date().toISOString(),
      pages: PAGES,
      holdMs: HOLD_MS,
      pinned: PINNED,
      plain: plainRun,
      guarded: guardedRun,
    },
    null,
    2,
  ) + '\n',
);
