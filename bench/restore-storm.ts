/**
 * The restore storm: N browsers open on a killed feed (N distinct viewers: no cache to hide
 * behind), the switch restored. Each browser does what the real page does: waits a random
 * delay up to RESTORE_JITTER_MS, then fetches its live region. Measured: the third party's peak
 * concurrency, the time until every browser has its live region back, and how many came back
 * fully live (the rest got fallbacks: never an error). Run with and without the jitter.
 *   npx tsx bench/restore-storm.ts [browsers=2000]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { KILL_SWITCH } from '../server/flags/catalog.js';
import { startBenchApp } from './lib/app.js';
import { Fleet, wallClock } from './lib/fleet.js';

const BROWSERS = Number(process.argv[2] ?? 2000);

export async function restoreStorm(browsers: number, jitterMs: number) {
  const app = await startBenchApp({ SIMULATOR_LATENCY_MS: '120', RESTORE_JITTER_MS: String(jitterMs) });
  await app.patch(KILL_SWITCH, { state: 'DISABLED' });
  const viewers = Array.from({ length: browsers }, (_, i) => `storm-${i}`);
  const fleet = await Fleet.connect(app.url, viewers, 2, { refetchJitterMs: jitterMs });
  app.simulator!.resetStats();
  const restoredAt = wallClock();
  await app.patch(KILL_SWITCH, { state: 'ENABLED' });
  const fragments: number[] = [];
  let errors = 0;
  let live = 0;
  for (let waited = 0; fragments.length + errors < browsers && waited < 60_000; waited += 100) {
    await sleep(100);
    const batch = await fleet.collect();
    fragments.push(...batch.fragments);
    errors += batch.fragmentErrors;
    live += batch.fragmentsLive;
  }
  const stats = app.simulator!.stats();
  await fleet.close();
  await app.stop();
  return {
    browsers,
    jitterMs,
    peakConcurrency: stats.peakInFlight,
    calls: stats.requests.avatars + stats.requests.recommendations,
    allLiveMs: Math.max(...fragments) - restoredAt,
    fullyLive: live,
    errors,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(`restore storm: ${BROWSERS} browsers, UPSTREAM_MAX_CONCURRENCY=32 per service, simulator latency ~120 ms`);
  const runs = [];
  for (const jitterMs of [0, 2000]) {
    const r = await restoreStorm(BROWSERS, jitterMs);
    runs.push(r);
    console.log(
      `jitter ${String(jitterMs).padStart(4)} ms: peak third-party concurrency ${r.peakConcurrency} (cap 64), ${r.calls} calls, every browser back in ${(r.allLiveMs / 1000).toFixed(2)} s, ${r.fullyLive}/${r.browsers} fully live, ${r.errors} errors`,
    );
  }
  await mkdir(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
  await writeFile(fileURLToPath(new URL(`./results/restore-storm-${BROWSERS}.json`, import.meta.url)), JSON.stringify({ at: new Date().toISOString(), runs }, null, 2));
}
