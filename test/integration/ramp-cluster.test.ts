import { mkdtemp } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Ramp } from '../../protocol/ramp.js';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { LEASE_KEY } from '../../server/ramp/lease.js';
import { BENCH_TOKEN, patchFlag } from '../../testing/app.js';
import { killLeftoverAppProcesses, startAppProcess, type AppProcess } from '../../testing/process.js';
import { TestRedis } from '../../testing/redis.js';
import { startTwoInstances, waitFor } from '../helpers/app.js';

const RAMP = `/api/flags/${KILL_SWITCH}/ramp`;
const api = (url: string, pathname: string, init: RequestInit = {}) =>
  fetch(url + pathname, {
    ...init,
    headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/json', ...init.headers },
  });
const rampAt = async (url: string): Promise<Ramp> => ((await (await api(url, RAMP)).json()) as { ramp: Ramp }).ramp;

describe('a guarded restore across two instances on Redis', () => {
  let cluster: Awaited<ReturnType<typeof startTwoInstances>>;
  afterEach(() => cluster.stop());

  it("counts every instance's calls: failures on the instance that does not drive roll it back", async () => {
    cluster = await startTwoInstances({ ADMIN_TOKEN: BENCH_TOKEN, RECOMMENDATIONS_CACHE_TTL_MS: '0' });
    const { a, b } = cluster;
    await a.patchFlag(KILL_SWITCH, { state: 'DISABLED' }, { authorization: `Bearer ${BENCH_TOKEN}` });
    const started = await api(a.url, RAMP, {
      method: 'POST',
      body: JSON.stringify({ stages: [50, 100], holdMs: 30_000, minCalls: 6, maxErrorRate: 0.2 }),
    });
    expect(started.status).toBe(202);
    // A started it and took the lease to write the first stage, so A drives (B only tries the
    // lease A renews four times a second); only B's third party fails, and only B serves pages.
    expect(await cluster.redis.client().get(LEASE_KEY)).toMatch(/\/[0-9a-f]{8}$/);
    await waitFor(async () => (await rampAt(b.url)).percent === 50, 5000, 'B to see the first stage');
    b.simulator!.setKnobs({ mode: 'fail' });
    for (let n = 0; n < 40; n++) await b.request(`/?user=reader-${n}`);
    await waitFor(async () => (await rampAt(a.url)).status !== 'running', 10_000, 'the rollback');
    const ramp = await rampAt(b.url);
    expect(ramp.status).toBe('rolled-back');
    expect(ramp.reason).toMatch(/^(avatars|recommendations): /);
    expect(a.simulator!.stats().requests.recommendations).toBe(0);
    await waitFor(() => b.repository!.get(KILL_SWITCH)!.definition.state === 'DISABLED', 5000, 'B to hear the kill');
  });
});

describe('the instance driving a ramp killed (SIGKILL)', { timeout: 90_000 }, () => {
  let redis: TestRedis;
  let doomed: AppProcess;
  let survivor: AppProcess;
  afterAll(async () => {
    await survivor?.stop();
    await killLeftoverAppProcesses();
    await redis?.destroy();
  });

  it('the other takes over within a few seconds and finishes it, writing no stage twice', async () => {
    redis = await TestRedis.create({ persist: false });
    const env = async () => ({
      REDIS_URL: redis.url,
      ADMIN_TOKEN: BENCH_TOKEN,
      LOG_LEVEL: 'info',
      FLAGS_FILE: path.join(await mkdtemp(path.join(tmpdir(), 'ramp-cluster-')), 'flags.json'),
    });
    [doomed, survivor] = await Promise.all([startAppProcess(await env()), startAppProcess(await env())]);
    await patchFlag(survivor.url, KILL_SWITCH, { state: 'DISABLED' });
    const started = await api(doomed.url, RAMP, {
      method: 'POST',
      body: JSON.stringify({ stages: [10, 50, 100], holdMs: 2000, minCalls: 0 }),
    });
    expect(started.status).toBe(202);
    const inspector = redis.client();
    const holder = () => inspector.get(LEASE_KEY);
    expect(await holder()).toMatch(new RegExp(`^${hostname()}/${doomed.child.pid}/`));
    await doomed.stop('SIGKILL');
    const killedAt = Date.now();
    await waitFor(
      async () => (await holder())?.startsWith(`${hostname()}/${survivor.child.pid}/`) === true,
      10_000,
      'the survivor to hold the lease',
    );
    const tookOverMs = Date.now() - killedAt;
    expect(tookOverMs).toBeLessThan(5000);
    await waitFor(async () => (await rampAt(survivor.url)).status !== 'running', 20_000, 'the ramp to end');
    expect((await rampAt(survivor.url)).status).toBe('completed');
    const { entries } = (await (await api(survivor.url, '/api/audit?limit=50')).json()) as {
      entries: { actor: { note?: string } }[];
    };
    const notes = entries.map((entry) => entry.actor.note).filter((note) => note?.startsWith('guarded restore'));
    expect(notes.reverse()).toEqual([
      'guarded restore, stage 1 of 3: live for 10 %',
      'guarded restore, stage 2 of 3: live for 50 %',
      'guarded restore, stage 3 of 3: live for 100 %',
    ]);
  });
});
