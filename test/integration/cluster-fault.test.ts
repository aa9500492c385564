import { mkdtemp } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { startSimulator, type Simulator } from '../../server/simulator/simulator.js';
import { BUDGET_KEYS } from '../../server/upstream/budget.js';
import { BENCH_TOKEN, patchFlag } from '../../testing/app.js';
import { connectLightPage } from '../../testing/light-page.js';
import { killLeftoverAppProcesses, startAppProcess, type AppProcess } from '../../testing/process.js';
import { TestRedis } from '../../testing/redis.js';
import { waitFor } from '../helpers/app.js';
import { startFailoverProxy } from '../helpers/failover-proxy.js';

const CAP = 2;
const LATENCY_MS = 300;

// Two server processes, a Redis, a third party, a load balancer and sixteen open pages; a restore
// at 300 ms a call and two calls at once takes seconds, and the dead instance's lease three more.
describe('an instance killed (SIGKILL) in the middle of a restore', { timeout: 120_000 }, () => {
  let redis: TestRedis;
  let simulator: Simulator;
  let doomed: AppProcess;
  let survivor: AppProcess;
  let balancer: Awaited<ReturnType<typeof startFailoverProxy>>;

  beforeAll(async () => {
    [redis, simulator] = await Promise.all([
      TestRedis.create({ persist: false }),
      startSimulator({ knobs: { latencyMs: LATENCY_MS } }),
    ]);
    const env = async () => ({
      REDIS_URL: redis.url,
      ADMIN_TOKEN: BENCH_TOKEN,
      LOG_LEVEL: 'info',
      UPSTREAM_MAX_CONCURRENCY: String(CAP),
      // Well above the third party's latency: on a busy machine a slow call must not be a failure.
      UPSTREAM_TIMEOUT_MS: '3000',
      RECOMMENDATIONS_CACHE_TTL_MS: '0',
      AVATAR_API_URL: simulator.avatarApiUrl,
      RECOMMENDATIONS_API_URL: simulator.recommendationsApiUrl,
      FLAGS_FILE: path.join(await mkdtemp(path.join(tmpdir(), 'cluster-fault-')), 'flags.json'),
    });
    [doomed, survivor] = await Promise.all([startAppProcess(await env()), startAppProcess(await env())]);
    // Every page through the balancer lands on the first instance while it lives.
    balancer = await startFailoverProxy([doomed.url, survivor.url]);
  }, 60_000);
  afterAll(async () => {
    await balancer?.close();
    await survivor?.stop();
    await killLeftoverAppProcesses();
    await simulator?.close();
    await redis?.destroy();
  });

  it('frees what it held within seconds; its pages reconnect to the other instance, and every page ends live under the cap', async () => {
    const pages = await Promise.all([
      ...Array.from({ length: 12 }, (_, n) => connectLightPage(balancer.url, `reader-on-doomed-${n}`)),
      ...Array.from({ length: 4 }, (_, n) => connectLightPage(survivor.url, `reader-on-survivor-${n}`)),
    ]);
    await patchFlag(survivor.url, KILL_SWITCH, { state: 'DISABLED' });
    await waitFor(() => pages.every(({ page }) => page.content() === 'killed'), 10_000, 'every page killed');
    simulator.resetStats();
    await patchFlag(survivor.url, KILL_SWITCH, { state: 'ENABLED' });

    // In the middle of the restore: the doomed instance holds part of the cap, its calls in flight.
    const inspector = redis.client();
    const leases = () => inspector.hgetall(BUDGET_KEYS.leases('avatars'));
    const doomedLease = async () =>
      Object.entries(await leases()).find(([instance]) => instance.startsWith(`${hostname()}/${doomed.child.pid}/`));
    await waitFor(async () => Number((await doomedLease())?.[1].split(' ')[0]) > 0, 20_000, 'a slice held');
    doomed.child.kill('SIGKILL');
    const killedAt = performance.now();
    await waitFor(async () => (await doomedLease()) === undefined, 10_000, 'the slice freed');
    // Its lease's three seconds, and the next renewal of the survivor's that finds it expired.
    expect(performance.now() - killedAt).toBeLessThan(5_000);

    await waitFor(() => pages.every(({ page }) => page.content() === 'live'), 60_000, 'every page live');
    const { peakInFlightBy } = simulator.stats();
    expect(peakInFlightBy.avatars).toBeLessThanOrEqual(CAP);
    expect(peakInFlightBy.recommendations).toBeLessThanOrEqual(CAP);
    // The doomed instance's pages are on the survivor now (the only instance left to answer them).
    for (const { socket } of pages.slice(0, 12)) expect(socket.connected).toBe(true);
    // At rest, nothing is held.
    await waitFor(async () => Object.keys(await leases()).length === 0, 10_000, 'nothing held at rest');
    for (const { socket } of pages) socket.disconnect();
  });
});
