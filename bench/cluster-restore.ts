/**
 * A restore across a cluster: N instances of the app (each the compiled server, as `npm start`
 * runs it) on one Redis, one third party that counts what it has in flight (the built-in simulator,
 * run here, at LATENCY ms a call), UPSTREAM_MAX_CONCURRENCY=CAP on every instance, and PAGES open
 * pages of distinct viewers spread over the instances in the ratio SPLIT (light browsers running
 * the page's own policy over Socket.IO). The switch is killed, then restored, and measured:
 *
 *   time to all live   until every page is live and whole (every avatar, live recommendations)
 *   the bound          the busier service's calls x LATENCY / CAP: what the cap allows at best
 *   peak in flight     per service, as the third party saw it (never above CAP, cluster-wide)
 *   page latency       a live page's load on a warm cache (p50, p99), with the shared budget and
 *                      without it (one instance alone)
 *
 *   npx tsx bench/cluster-restore.ts [instances=2] [pages=24] [split=3:1] [cap=2] [latency=300] [rounds=3]
 * One instance (`1`) runs without Redis: the same restore, the cap the instance's own.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { KILL_SWITCH } from '../server/flags/catalog.js';
import { projectRoot } from '../server/paths.js';
import { startSimulator, type Simulator } from '../server/simulator/simulator.js';
import { BENCH_TOKEN, patchFlag } from '../testing/app.js';
import { connectLightPage } from '../testing/light-page.js';
import { startAppProcess, type AppProcess } from '../testing/process.js';
import { TestRedis } from '../testing/redis.js';
import { percentile } from './lib/fleet.js';

const [INSTANCES, PAGES, SPLIT, CAP, LATENCY_MS, ROUNDS] = [
  Number(process.argv[2] ?? 2),
  Number(process.argv[3] ?? 24),
  (process.argv[4] ?? '3:1').split(':').map(Number),
  Number(process.argv[5] ?? 2),
  Number(process.argv[6] ?? 300),
  Number(process.argv[7] ?? 3),
];

type OpenPage = Awaited<ReturnType<typeof connectLightPage>>;

/**
 * PAGES viewers spread over the instances in the ratio SPLIT (the first instance takes the first
 * share): new ones each round, so that each page needs its own avatar and recommendations.
 */
function spread(instances: AppProcess[], round: number): { url: string; viewer: string }[] {
  const weights = instances.map((_, i) => SPLIT[i] ?? 1);
  const total = weights.reduce((a, b) => a + b, 0);
  const counts = weights.map((w) => Math.round((PAGES * w) / total));
  counts[0]! += PAGES - counts.reduce((a, b) => a + b, 0);
  return instances.flatMap((app, i) =>
    Array.from({ length: counts[i]! }, (_, n) => ({ url: app.url, viewer: `reader-${round}-${i}-${n}` })),
  );
}

/** One restore: from the request, until every page is live and whole. */
async function restore(pages: OpenPage[], url: string, simulator: Simulator) {
  await patchFlag(url, KILL_SWITCH, { state: 'DISABLED' });
  while (pages.some(({ page }) => page.content() !== 'killed')) await sleep(10);
  await sleep(500); // calls given up on by the kill end
  simulator.resetStats();
  for (const { page } of pages) page.resetCounters();
  const started = performance.now();
  await patchFlag(url, KILL_SWITCH, { state: 'ENABLED' });
  const deadline = started + 120_000;
  while (pages.some(({ page }) => page.content() !== 'live') && performance.now() < deadline) await sleep(10);
  const ms = performance.now() - started;
  const stats = simulator.stats();
  const busiest = Math.max(stats.requests.avatars, stats.requests.recommendations);
  return {
    ms,
    live: pages.filter(({ page }) => page.content() === 'live').length,
    boundMs: (busiest * LATENCY_MS) / CAP,
    calls: { avatars: stats.requests.avatars, recommendations: stats.requests.recommendations },
    peak: { avatars: stats.peakInFlightBy.avatars, recommendations: stats.peakInFlightBy.recommendations },
    turns: pages.reduce((sum, { page }) => sum + page.requests.waits, 0),
    fragments: pages.reduce((sum, { page }) => sum + page.requests.fragments, 0),
  };
}

/** A live page's load on a warm cache, as a returning reader: its time, 200 times. */
async function pageLatency(url: string): Promise<{ p50: number; p99: number }> {
  const viewer = 'returning-reader';
  await fetch(`${url}/?user=${viewer}`).then((r) => r.text());
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const started = performance.now();
    await fetch(`${url}/?user=${viewer}`).then((r) => r.text());
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

async function main() {
  execFileSync(process.execPath, [`${projectRoot}node_modules/typescript/bin/tsc`, '-p', 'tsconfig.build.json'], {
    cwd: projectRoot,
    stdio: 'inherit',
  });
  const simulator = await startSimulator({ knobs: { latencyMs: LATENCY_MS } });
  const redis = INSTANCES > 1 ? await TestRedis.create({ persist: false }) : undefined;
  const env = {
    ADMIN_TOKEN: BENCH_TOKEN,
    // The start is read from the info line that says where it listens.
    LOG_LEVEL: 'info',
    API_RATE_LIMIT_PER_MIN: '1000000',
    UPSTREAM_MAX_CONCURRENCY: String(CAP),
    AVATAR_API_URL: simulator.avatarApiUrl,
    RECOMMENDATIONS_API_URL: simulator.recommendationsApiUrl,
    ...(redis ? { REDIS_URL: redis.url } : {}),
  };
  const dirs = await Promise.all(Array.from({ length: INSTANCES }, (_, i) => mkdtemp(`/tmp/cluster-restore-${i}-`)));
  // One flag folder for all without Redis would be two writers of one file: each its own.
  const instances = await Promise.all(dirs.map((dir) => startAppProcess({ ...env, FLAGS_FILE: `${dir}/flags.json` })));
  try {
    const latency = await pageLatency(instances[0]!.url);
    const rounds = [];
    for (let round = 0; round < ROUNDS; round++) {
      const pages = await Promise.all(spread(instances, round).map(({ url, viewer }) => connectLightPage(url, viewer)));
      const result = await restore(pages, instances[0]!.url, simulator);
      for (const { socket } of pages) socket.disconnect();
      rounds.push(result);
      console.log(
        `round ${round + 1}: all ${result.live}/${PAGES} live in ${(result.ms / 1000).toFixed(2)} s (bound ${(result.boundMs / 1000).toFixed(2)} s, ${(result.ms / result.boundMs).toFixed(2)}x), ` +
          `calls avatars ${result.calls.avatars} recs ${result.calls.recommendations}, peak in flight ${result.peak.avatars}/${result.peak.recommendations} (cap ${CAP}), ${result.turns} turns, ${result.fragments} fragments`,
      );
    }
    console.log(`page on a warm cache: p50 ${latency.p50.toFixed(1)} ms, p99 ${latency.p99.toFixed(1)} ms`);
    const ratios = rounds.map((r) => r.ms / r.boundMs).sort((a, b) => a - b);
    console.log(
      `${INSTANCES} instance(s), ${PAGES} pages split ${SPLIT.slice(0, INSTANCES).join(':')}, cap ${CAP}, ${LATENCY_MS} ms a call: median ${ratios[Math.floor(ratios.length / 2)]!.toFixed(2)}x the bound, peak ${Math.max(...rounds.map((r) => Math.max(r.peak.avatars, r.peak.recommendations)))} (cap ${CAP})`,
    );
  } finally {
    await Promise.all(instances.map((app) => app.stop()));
    await simulator.close();
    await redis?.destroy();
  }
}

await main();
