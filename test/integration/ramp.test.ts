import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Ramp } from '../../protocol/ramp.js';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { bearer, createToken } from '../helpers/access.js';
import { runToEnd } from '../../testing/process.js';
import { counterValue, startTestApp, TEST_TOKEN, waitFor, type TestApp } from '../helpers/app.js';

const RAMP = `/api/flags/${KILL_SWITCH}/ramp`;
type Socket = Awaited<ReturnType<TestApp['socket']>>;

async function startRamp(app: TestApp, settings: Record<string, unknown>, headers: Record<string, string> = {}) {
  return app.request(RAMP, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(settings),
  });
}

const rampOf = async (app: TestApp): Promise<Ramp> => (await app.request(RAMP)).body.ramp as Ramp;

async function waitForRamp(app: TestApp, check: (ramp: Ramp) => boolean, ms: number, what: string): Promise<Ramp> {
  let seen: Ramp | undefined;
  await waitFor(async () => check((seen = await rampOf(app))), ms, what);
  return seen!;
}

/** Each browser's kill switch as it last heard it: the snapshot, then every flag_update. */
function follow(sockets: Socket[]) {
  const live = new Map<Socket, boolean>();
  const killedAgain: string[] = [];
  for (const [n, socket] of sockets.entries()) {
    live.set(socket, socket.snapshots[0]![KILL_SWITCH] === true);
    socket.on('flag_update', (update: { key: string; value: unknown }) => {
      if (update.key !== KILL_SWITCH) return;
      if (live.get(socket) && update.value === false) killedAgain.push(`viewer-${n}`);
      live.set(socket, update.value === true);
    });
  }
  return {
    share: () => (100 * [...live.values()].filter(Boolean).length) / sockets.length,
    /** The indices of the browsers live now. */
    live: () => sockets.flatMap((socket, n) => (live.get(socket) ? [n] : [])),
    killedAgain,
  };
}

describe('starting a guarded restore', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(() => app.stop());

  it('404 before any ramp; 409 while the switch is live; 400 naming a bad field; 403 for a read-only token', async () => {
    expect((await app.request(RAMP)).status).toBe(404);
    const live = await startRamp(app, {});
    expect(live.status).toBe(409);
    expect(live.body.message).toMatch(/not killed for everyone/);
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    for (const [body, field] of [
      [{ stages: [10, 50] }, 'stages'],
      [{ stages: [50, 25, 100] }, 'stages'],
      [{ stages: [0, 100] }, 'stages'],
      [{ stages: [10.5, 100] }, 'stages'],
      [{ holdMs: 999 }, 'holdMs'],
      [{ maxErrorRate: 1.5 }, 'maxErrorRate'],
      [{ minCalls: -1 }, 'minCalls'],
      [{ speed: 'fast' }, 'speed'],
    ] as const) {
      const refused = await startRamp(app, body);
      expect(refused.status, JSON.stringify(body)).toBe(400);
      expect(refused.body.field).toBe(field);
    }
    const readOnly = await createToken(app, 'watcher', '--read-only');
    expect((await startRamp(app, {}, bearer(readOnly))).status).toBe(403);
    const text = await app.request(RAMP, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
    expect(text.status).toBe(415);
  });

  it('202 with the ramp, its first stage written; a second one is refused while it runs; a read-only token sees it', async () => {
    const started = await startRamp(app, { stages: [20, 100], holdMs: 60_000, minCalls: 0 });
    expect(started.status).toBe(202);
    expect(started.body.ramp).toMatchObject({
      key: KILL_SWITCH,
      status: 'running',
      stages: [20, 100],
      holdMs: 60_000,
      maxErrorRate: 0.05,
      minCalls: 0,
      stage: 0,
      percent: 20,
      actor: { source: 'api', name: 'admin' },
    });
    const flag = (await app.request(`/api/flags/${KILL_SWITCH}`)).body;
    expect(flag.definition).toMatchObject({
      state: 'ENABLED',
      defaultVariant: 'off',
      targeting: {
        fractional: [
          ['on', 20],
          ['off', 80],
        ],
      },
    });
    expect((await startRamp(app, {})).status).toBe(409);
    const watcher = await createToken(app, 'watcher-2', '--read-only');
    const seen = await app.request(RAMP, { headers: bearer(watcher) });
    expect(seen.status).toBe(200);
    expect(seen.body.ramp.id).toBe(started.body.ramp.id);
    // A person's kill ends it: stopped, saying who.
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' }, { 'x-actor': 'Maya, on call' });
    const stopped = await waitForRamp(app, (ramp) => ramp.status !== 'running', 5000, 'the ramp to stop');
    expect(stopped.status).toBe('stopped');
    expect(stopped.reason).toMatch(/admin \(Maya, on call\) killed the switch/);
    const metrics = () => fetch(`${app.url}/metrics`).then((response) => response.text());
    await waitFor(async () => counterValue(await metrics(), 'ramp_ends_total', { status: 'stopped' }) === 1);
    expect(counterValue(await metrics(), 'ramp_stage')).toBe(-1);
  });
});

describe('a guarded restore over three hundred viewers', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(() => app.stop());

  it("goes live for each stage's share, never kills a viewer again, and ends plain ENABLED with no targeting", async () => {
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    const sockets = await Promise.all(
      Array.from({ length: 300 }, (_, n) => app.socket({ cookie: `viewer=viewer-${n}` })),
    );
    const viewers = follow(sockets);
    expect(viewers.share()).toBe(0);
    const stages = [10, 25, 50, 100];
    const started = await startRamp(app, { stages, holdMs: 1000, minCalls: 0 });
    expect(started.status).toBe(202);
    const shares: number[] = [];
    for (const [stage, percent] of stages.entries()) {
      await waitForRamp(
        app,
        (ramp) => (ramp.stage === stage && ramp.percent === percent) || ramp.status !== 'running',
        10_000,
        `stage ${stage}`,
      );
      await app.delivered(sockets);
      shares.push(viewers.share());
    }
    const done = await waitForRamp(app, (ramp) => ramp.status !== 'running', 10_000, 'the end');
    expect(done.status).toBe('completed');
    // Each viewer's bucket is a hash of its key: the share live is a binomial draw, within three
    // standard deviations of the stage's percentage (8.7 points at 50 % of 300).
    for (const [n, share] of shares.entries()) {
      const p = stages[n]! / 100;
      expect(Math.abs(share - stages[n]!), `stage ${n}: ${share} %`).toBeLessThanOrEqual(
        300 * Math.sqrt((p * (1 - p)) / 300),
      );
    }
    expect(viewers.killedAgain).toEqual([]);
    const flag = (await app.request(`/api/flags/${KILL_SWITCH}`)).body;
    expect(flag.definition.state).toBe('ENABLED');
    expect(flag.definition.defaultVariant).toBe('on');
    expect(flag.definition.targeting).toBeUndefined();
    // Each stage one audited write under the token that started it, its note naming the stage.
    const notes = (await app.request('/api/audit?limit=20')).body.entries
      .filter((entry: any) => entry.key === KILL_SWITCH && /guarded restore/.test(entry.actor.note ?? ''))
      .map((entry: any) => entry.actor.note)
      .reverse();
    expect(notes).toEqual(stages.map((percent, n) => `guarded restore, stage ${n + 1} of 4: live for ${percent} %`));
  });
});

describe('the guard', () => {
  let app: TestApp;
  afterEach(() => app.stop());

  it('rolls back within the hold when the third party fails for the viewers already live: every viewer killed, the audit says why', async () => {
    app = await startTestApp({ UPSTREAM_TIMEOUT_MS: '1000', RECOMMENDATIONS_CACHE_TTL_MS: '0' });
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    const sockets = await Promise.all(
      Array.from({ length: 100 }, (_, n) => app.socket({ cookie: `viewer=reader-${n}` })),
    );
    const viewers = follow(sockets);
    const started = await startRamp(app, { stages: [50, 100], holdMs: 20_000, minCalls: 4, maxErrorRate: 0.2 });
    expect(started.body.ramp.percent).toBe(50);
    await app.delivered(sockets);
    const live = viewers.live();
    expect(live.length).toBeGreaterThan(30);
    app.simulator!.setKnobs({ mode: 'fail' });
    const began = Date.now();
    // The live viewers' page loads: their calls fail.
    for (const n of live.slice(0, 40)) await app.request(`/?user=reader-${n}`);
    const ended = await waitForRamp(app, (ramp) => ramp.status !== 'running', 10_000, 'the rollback');
    expect(Date.now() - began).toBeLessThan(20_000);
    expect(ended.status).toBe('rolled-back');
    expect(ended.reason).toMatch(
      /^(avatars|recommendations): .*(calls failed|circuit breaker opened).* while live for 50 % of viewers$/,
    );
    await app.delivered(sockets);
    expect(viewers.share()).toBe(0);
    const flag = (await app.request(`/api/flags/${KILL_SWITCH}`)).body;
    expect(flag.definition.state).toBe('DISABLED');
    const last = (await app.request('/api/audit?limit=1')).body.entries[0];
    expect(last.actor.source).toBe('auto');
    expect(last.actor.name).toContain(ended.reason);
    const metrics = () => fetch(`${app.url}/metrics`).then((response) => response.text());
    await waitFor(async () => counterValue(await metrics(), 'ramp_ends_total', { status: 'rolled-back' }) === 1);
  });

  it('holds a stage with too few calls, saying so, and does not advance blind', async () => {
    app = await startTestApp();
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    await startRamp(app, { stages: [10, 100], holdMs: 1000, minCalls: 1000 });
    const waiting = await waitForRamp(
      app,
      (ramp) => /waiting for calls/.test(ramp.guard?.verdict ?? ''),
      5000,
      'the guard to say it waits',
    );
    expect(waiting.stage).toBe(0);
    expect(waiting.guard!.verdict).toMatch(/waiting for calls: \d+ of 1000 so far/);
    expect(waiting.guard!.enough).toBe(false);
  });
});

describe('a restart in the middle of a ramp', () => {
  it('resumes it where it was, and writes no stage twice', async () => {
    const first = await startTestApp();
    await first.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    await startRamp(first, { stages: [10, 50, 100], holdMs: 1500, minCalls: 0 });
    await waitForRamp(first, (ramp) => ramp.stage === 1 && ramp.percent === 50, 10_000, 'the second stage');
    await first.close();
    const again = await startTestApp({}, { dir: first.dir });
    try {
      const resumed = await rampOf(again);
      expect(resumed).toMatchObject({ status: 'running', stage: 1, percent: 50 });
      const done = await waitForRamp(again, (ramp) => ramp.status !== 'running', 10_000, 'the end');
      expect(done.status).toBe('completed');
      const notes = (await again.request('/api/audit?limit=50')).body.entries
        .map((entry: any) => entry.actor.note as string | undefined)
        .filter((note: string | undefined) => note?.startsWith('guarded restore'));
      expect(notes.slice().reverse()).toEqual([
        'guarded restore, stage 1 of 3: live for 10 %',
        'guarded restore, stage 2 of 3: live for 50 %',
        'guarded restore, stage 3 of 3: live for 100 %',
      ]);
    } finally {
      await again.stop();
    }
  });
});

describe('npm run flag -- restore --guarded', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(() => app.stop());
  const cli = (...args: string[]) =>
    runToEnd('server/flags/cli.ts', args, { FLAG_API_URL: app.url, ADMIN_TOKEN: TEST_TOKEN, LOG_LEVEL: 'silent' });

  it('starts one and follows it to its end, a line per stage; exit 0 when it completed', async () => {
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    const run = await cli('restore', '--guarded', '--stages', '50,100', '--hold', '1s', '--min-calls', '0');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout.trim().split('\n')).toEqual([
      'guarded restore started: stages 50, 100 %, 1 s each; rolled back past 5 % failed calls over at least 0',
      expect.stringMatching(/^stage 1 of 2: live for 50 %/),
      expect.stringMatching(/^stage 2 of 2: live for 100 %/),
      'completed: live for everyone',
    ]);
    const last = (await app.request('/api/audit?limit=1')).body.entries[0];
    expect(last.actor).toMatchObject({ source: 'cli', note: 'guarded restore, stage 2 of 2: live for 100 %' });
  });

  it('exits non-zero when a person stops it, saying who', async () => {
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    const run = cli('restore', '--guarded', '--stages', '10,100', '--hold', '60s');
    await waitForRamp(app, (ramp) => ramp.status === 'running' && ramp.percent === 10, 20_000, 'the first stage');
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    const ended = await run;
    expect(ended.code).toBe(1);
    expect(ended.stdout).toMatch(
      /stopped: admin killed the switch during the restore \(at stage 1 of 2: live for 10 %\)/,
    );
    expect((await cli('ramp')).stdout).toMatch(/^stopped: /);
    expect((await cli('restore', 'theme', '--guarded')).stderr).toMatch(/for the kill switch/);
  });
});
