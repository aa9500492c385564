/**
 * Two instances sharing flags through Redis (a redis-server of our own on a free port), 1,000
 * browsers on instance B. A flip made on A (crossing Redis) against a flip made on B itself (the
 * single-instance path), alternated, same run, each path with as many kills as restores (a
 * restore makes the pages refetch: they finish before the next flip). Every flip must reach all
 * 1,000 browsers. Then the recovery time after a Redis restart.
 *   npx tsx bench/cluster-push.ts
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KILL_SWITCH } from '../server/flags/catalog.js';
import { TestRedis } from '../testing/redis.js';
import { startBenchApp } from '../testing/app.js';
import { Fleet, median, percentile } from './lib/fleet.js';

const BROWSERS = 1000;
const ROUNDS = 16; // even: each path gets 8 kills and 8 restores
const redis = await TestRedis.create();
const env = { REDIS_URL: redis.url };
const [a, b] = await Promise.all([startBenchApp(env), startBenchApp(env)]);
const fleet = await Fleet.connect(
  b.url,
  Array.from({ length: BROWSERS }, (_, i) => `viewer-${i}`),
  2,
);

async function flipVia(app: typeof a, state: 'DISABLED' | 'ENABLED') {
  const { latencies } = await fleet.timeFlip(() => app.patch(KILL_SWITCH, { state }));
  if (latencies.length !== BROWSERS) throw new Error(`${state} reached ${latencies.length} of ${BROWSERS} browsers`);
  await fleet.settled();
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

const viaOther: { p50: number; p99: number }[] = [];
const viaSame: { p50: number; p99: number }[] = [];
for (let round = 0; round < ROUNDS; round++) {
  // Even rounds: kill on A, restore on B; odd rounds: kill on B, restore on A.
  if (round % 2 === 0) {
    viaOther.push(await flipVia(a, 'DISABLED'));
    viaSame.push(await flipVia(b, 'ENABLED'));
  } else {
    viaSame.push(await flipVia(b, 'DISABLED'));
    viaOther.push(await flipVia(a, 'ENABLED'));
  }
}
const row = (label: string, runs: { p50: number; p99: number }[]) =>
  console.log(
    `${label.padEnd(52)} p50 ${median(runs.map((r) => r.p50)).toFixed(1)} ms   p99 ${median(runs.map((r) => r.p99)).toFixed(1)} ms`,
  );
console.log(`${BROWSERS} browsers on instance B, medians of ${ROUNDS} flips each, PATCH sent -> flag_update received`);
row('flip on instance A (through Redis) -> browsers on B', viaOther);
row('flip on instance B itself -> browsers on B', viaSame);

// Recovery: Redis killed, restarted; time until a write succeeds again through either instance.
await redis.stop();
await sleep(500);
const restartedAt = performance.now();
await redis.start();
const started = performance.now();
for (;;) {
  const response = await fetch(`${a.url}/api/flags/${KILL_SWITCH}`, {
    method: 'PATCH',
    headers: { authorization: 'Bearer bench-token-0123456789', 'content-type': 'application/json' },
    body: JSON.stringify({ state: 'ENABLED', variants: { probe: Date.now() % 2 === 0 } }),
  });
  if (response.ok) break;
  await sleep(5);
}
console.log(
  `Redis restart: redis-server up in ${(started - restartedAt).toFixed(0)} ms, then writes through the app again after ${(performance.now() - started).toFixed(0)} ms`,
);

await fleet.close();
await Promise.all([a.stop(), b.stop()]);
await redis.destroy();
