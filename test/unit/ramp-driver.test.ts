import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ServiceFigures } from '../../protocol/ramp.js';
import { defaultFlagDocument, KILL_SWITCH } from '../../server/flags/catalog.js';
import { FlagRepository } from '../../server/flags/repository.js';
import { createLogger } from '../../server/observability/logger.js';
import { createMetrics } from '../../server/observability/metrics.js';
import { RampDriver } from '../../server/ramp/driver.js';
import type { StageFigures } from '../../server/ramp/figures.js';
import { processLease, type DriverLease } from '../../server/ramp/lease.js';
import { stageDefinition } from '../../server/ramp/plan.js';
import { FileRampStore } from '../../server/ramp/store.js';
import { waitFor } from '../helpers/app.js';
import { MemoryBackend } from '../helpers/memory-backend.js';

const logger = createLogger('silent');
const person = { source: 'api' as const, name: 'admin' };

/**
 * The guard's input, set by the test: what the instances counted for the stage. (The counting
 * itself, over real clients and Redis, is tested in test/integration/ramp*.test.ts.)
 */
class GivenFigures implements StageFigures {
  services: Record<string, ServiceFigures> = {};
  stages: (string | undefined)[] = [];
  begin(stage: string | undefined) {
    if (this.stages.at(-1) !== stage) this.stages.push(stage);
  }
  read(stage: string) {
    this.begin(stage);
    return Promise.resolve(this.services);
  }
  close() {
    return Promise.resolve();
  }
}

describe('the ramp driver', () => {
  let dir: string;
  let repository: FlagRepository;
  let figures: GivenFigures;
  let clock: number;
  let drivers: RampDriver[];
  let metrics = createMetrics({ collectDefaults: false });
  const gauge = async (name: 'rampStage' | 'rampPercentLive') => (await metrics[name].get()).values[0]?.value;
  const ends = async (status: string) =>
    (await metrics.rampEnds.get()).values.find((value) => value.labels.status === status)?.value ?? 0;

  async function driver(options: { lease?: DriverLease; tickMs?: number } = {}): Promise<RampDriver> {
    const made = new RampDriver({
      repository,
      store: new FileRampStore(path.join(dir, 'flags.ramp.json')),
      figures,
      lease: options.lease ?? processLease,
      metrics,
      logger,
      now: () => clock,
      tickMs: options.tickMs ?? 60_000, // the test steps it by hand, unless it says otherwise
    });
    await made.start();
    drivers.push(made);
    return made;
  }

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ramp-driver-'));
    repository = new FlagRepository(new MemoryBackend(defaultFlagDocument()), logger, defaultFlagDocument);
    await repository.start();
    await repository.update(KILL_SWITCH, (d) => ({ ...d, state: 'DISABLED' }), { actor: person });
    figures = new GivenFigures();
    clock = Date.parse('2026-12-07T12:00:00Z');
    drivers = [];
    metrics = createMetrics({ collectDefaults: false });
  });
  afterEach(async () => {
    for (const made of drivers) await made.close();
    await rm(dir, { recursive: true, force: true });
  });

  const settings = { stages: [10, 50, 100], holdMs: 1000, maxErrorRate: 0.05, minCalls: 2 };

  /** The next automatic write (a rollback) fails once: the process died, or stalled, just before it. */
  function failNextAutomaticWrite(why: string) {
    const update = repository.update.bind(repository);
    let failures = 1;
    repository.update = (key, updater, options) => {
      if (options.actor.source === 'auto' && failures-- > 0) return Promise.reject(new Error(why));
      return update(key, updater, options);
    };
  }
  const flag = () => repository.get(KILL_SWITCH)!;

  it('writes the first stage at once, then advances a stage per hold once it has the calls, and completes', async () => {
    const start = flag().definition;
    const ramp = await driver();
    expect(await ramp.begin(settings, person)).toMatchObject({ stage: 0, percent: 10 });
    expect(flag().definition).toEqual(stageDefinition(start, 10));
    figures.services = { recommendations: { calls: 1, failed: 0, breakerOpened: 0 } };
    clock += 1000;
    await ramp.kick();
    expect(ramp.current()).toMatchObject({ stage: 0, guard: { enough: false } });
    figures.services = { recommendations: { calls: 2, failed: 0, breakerOpened: 0 } };
    await ramp.kick();
    expect(ramp.current()).toMatchObject({ stage: 1, percent: 50 });
    expect(flag().definition).toEqual(stageDefinition(start, 50));
    clock += 1000;
    await ramp.kick();
    expect(flag().definition).toMatchObject({ state: 'ENABLED', defaultVariant: 'on' });
    expect(flag().definition.targeting).toBeUndefined();
    clock += 1000;
    await ramp.kick();
    expect(ramp.current()).toMatchObject({ status: 'completed', reason: 'held 1 s with no failure past the limit' });
    // The stage the figures counted: each written stage in turn, then none.
    expect(figures.stages.map((stage) => stage?.split(':')[1])).toEqual(['0', '1', '2', undefined]);
  });

  it('rolls back to the definition it started from, as automatic', async () => {
    await repository.update(
      KILL_SWITCH,
      (d) => ({ ...d, targeting: { if: [{ in: ['beta', { var: 'groups' }] }, 'on', null] } }),
      { actor: person },
    );
    const before = flag().definition;
    const ramp = await driver();
    await ramp.begin(settings, person);
    figures.services = { avatars: { calls: 10, failed: 1, breakerOpened: 0 } };
    await ramp.kick();
    expect(ramp.current()).toMatchObject({ status: 'rolled-back' });
    expect(ramp.current()!.reason).toBe(
      'avatars: 1 of 10 calls failed (10 %, limit 5.0 %) while live for 10 % of viewers',
    );
    expect(flag().definition).toEqual(before);
    expect(repository.audit.recent(1)[0]!.actor).toEqual({
      source: 'auto',
      name: `guarded restore rolled back: ${ramp.current()!.reason}`,
    });
  });

  it('goes on from its own stage written just before a crash, without writing it again', async () => {
    const start = flag().definition;
    const first = await driver();
    const started = await first.begin(settings, person);
    await first.close();
    drivers = [];
    // The crash: the next stage written, the ramp not yet saved.
    const written = await repository.update(KILL_SWITCH, () => stageDefinition(start, 50), {
      actor: person,
      ifMatch: [flag().version],
    });
    const again = await driver();
    await again.kick();
    expect(again.current()).toMatchObject({ id: started.id, status: 'running', stage: 1, percent: 50 });
    expect(flag().version).toBe(written.version);
  });

  it('finishes a rollback it decided before a crash', async () => {
    const first = await driver();
    await first.begin(settings, person);
    figures.services = { avatars: { calls: 3, failed: 0, breakerOpened: 1 } };
    // Decided and saved, then the process died before writing: played by a store that refuses nothing but a repository that fails once.
    failNextAutomaticWrite('the process died here');
    await first.kick();
    expect(first.current()).toMatchObject({ status: 'running' });
    expect(flag().definition.state).toBe('ENABLED');
    await first.close();
    drivers = [];
    const again = await driver();
    await again.kick();
    expect(again.current()).toMatchObject({
      status: 'rolled-back',
      reason: 'avatars: its circuit breaker opened (0 of 3 calls failed) while live for 10 % of viewers',
    });
    expect(flag().definition.state).toBe('DISABLED');
  });

  it('ends rolled-back when AUTO_KILL killed the switch, stopped when a person did, and never writes over either', async () => {
    const ramp = await driver();
    await ramp.begin(settings, person);
    await repository.update(KILL_SWITCH, (d) => ({ ...d, state: 'DISABLED' }), {
      actor: { source: 'auto', name: 'auto-kill: circuit breaker for avatars opened' },
    });
    const version = flag().version;
    await ramp.kick();
    expect(ramp.current()).toMatchObject({
      status: 'rolled-back',
      reason: 'auto-kill: circuit breaker for avatars opened',
    });
    expect(flag().version).toBe(version);

    await ramp.begin(settings, person);
    await repository.update(KILL_SWITCH, (d) => ({ ...d, targeting: undefined, defaultVariant: 'on' }), {
      actor: { ...person, note: 'Maya' },
    });
    await ramp.kick();
    expect(ramp.current()).toMatchObject({
      status: 'stopped',
      reason: 'admin (Maya) changed the switch (default off → on, targeting removed) during the restore',
    });
  });

  it('refuses to start over a running ramp, or from a switch that is not killed', async () => {
    const ramp = await driver();
    await ramp.begin({ ...settings, holdMs: 60_000 }, person);
    await expect(ramp.begin(settings, person)).rejects.toThrow(/already running \(stage 1 of 3\)/);
    await repository.update(KILL_SWITCH, (d) => ({ ...d, state: 'DISABLED' }), { actor: person });
    await ramp.kick();
    await repository.update(
      KILL_SWITCH,
      (d) => ({ ...d, state: 'ENABLED', targeting: undefined, defaultVariant: 'on' }),
      { actor: person },
    );
    await expect(ramp.begin(settings, person)).rejects.toThrow(/not killed for everyone/);
  });

  it('tells its listeners of each save, once, and keeps its gauges and counters', async () => {
    const ramp = await driver();
    const heard: (string | undefined)[] = [];
    const stop = ramp.onChange((current) => heard.push(current && `${current.status}:${current.percent}`));
    expect(await gauge('rampStage')).toBe(-1);
    await ramp.begin({ ...settings, minCalls: 0 }, person);
    expect(heard).toEqual(['running:0', 'running:10']);
    expect(await gauge('rampStage')).toBe(0);
    expect(await gauge('rampPercentLive')).toBe(10);
    await ramp.kick(); // nothing new: the hold is not over, the figures are the same
    expect(heard).toHaveLength(3); // the guard's first figures, saved for the pages
    await ramp.kick();
    expect(heard).toHaveLength(3);
    stop();
    clock += 1000;
    await ramp.kick();
    expect(heard).toHaveLength(3);
    expect(await ramp.latest()).toMatchObject({ stage: 1, percent: 50 });
    expect(await gauge('rampStage')).toBe(1);
    clock += 1000;
    await ramp.kick();
    clock += 1000;
    await ramp.kick();
    expect(ramp.current()!.status).toBe('completed');
    expect(await gauge('rampStage')).toBe(-1);
    expect(await gauge('rampPercentLive')).toBe(0);
    expect(await ends('completed')).toBe(1);
  });

  it('saves the guard for the pages at most once a second', async () => {
    const ramp = await driver();
    await ramp.begin({ ...settings, holdMs: 60_000 }, person);
    figures.services = { avatars: { calls: 1, failed: 0, breakerOpened: 0 } };
    await ramp.kick();
    expect(ramp.current()!.guard!.services.avatars!.calls).toBe(1);
    figures.services = { avatars: { calls: 2, failed: 0, breakerOpened: 0 } };
    clock += 999;
    await ramp.kick();
    expect(ramp.current()!.guard!.services.avatars!.calls).toBe(1);
    clock += 1;
    await ramp.kick();
    expect(ramp.current()!.guard!.services.avatars!.calls).toBe(2);
  });

  it('looks at once when the switch is written, without waiting for its tick', async () => {
    const ramp = await driver();
    await ramp.begin(settings, person);
    await repository.update(KILL_SWITCH, (d) => ({ ...d, state: 'DISABLED' }), { actor: person });
    await waitFor(() => ramp.current()!.status === 'stopped', 2000, 'the ramp to stop');
    // Another flag's write is no reason to look.
    const looks = await driver();
    await looks.begin(settings, person);
    const kicked = vi.spyOn(looks, 'kick');
    await repository.update('theme', (d) => ({ ...d, defaultVariant: 'dark' }), { actor: person });
    expect(kicked).not.toHaveBeenCalled();
  });

  it('ticks by itself while a ramp runs, and stops ticking when it ends', async () => {
    let asked = 0;
    const counting: DriverLease = { hold: () => Promise.resolve(++asked > 0), release: () => Promise.resolve() };
    const ramp = await driver({ lease: counting, tickMs: 5 });
    await ramp.begin({ ...settings, minCalls: 0 }, person);
    clock += 1000;
    await waitFor(() => ramp.current()!.stage === 1, 2000, 'the next stage on a tick');
    clock += 1000;
    await waitFor(() => ramp.current()!.stage === 2, 2000, 'the last stage on a tick');
    clock += 1000;
    await waitFor(() => ramp.current()!.status === 'completed', 2000, 'the end on a tick');
    const after = asked;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(asked).toBe(after);
  });

  it('writes nothing without the lease, and nothing once closed', async () => {
    const elsewhere: DriverLease = { hold: () => Promise.resolve(false), release: () => Promise.resolve() };
    const ramp = await driver({ lease: elsewhere });
    const version = flag().version;
    expect(await ramp.begin(settings, person)).toMatchObject({ status: 'running', percent: 0 });
    await ramp.kick();
    expect(flag().version).toBe(version);
    const closed = await driver();
    await closed.close();
    await closed.kick();
    expect(flag().version).toBe(version);
  });

  it('a ramp of a kill switch that is gone is refused, and one running ends stopped', async () => {
    const ramp = await driver();
    await ramp.begin({ ...settings, holdMs: 60_000 }, person);
    const get = repository.get.bind(repository);
    repository.get = (key: string) => (key === KILL_SWITCH ? undefined : get(key));
    await ramp.kick();
    expect(ramp.current()).toMatchObject({ status: 'stopped', reason: 'the kill switch was removed' });
    await expect(ramp.begin(settings, person)).rejects.toThrow(`Unknown flag "${KILL_SWITCH}".`);
  });

  it('has no ramp to show before the first', async () => {
    const ramp = await driver();
    expect(ramp.current()).toBeUndefined();
    expect(await ramp.latest()).toBeUndefined();
  });

  it('audits each stage under the token that started it, its note naming the stage', async () => {
    const ramp = await driver();
    await ramp.begin(settings, { ...person, note: 'Maya', address: '10.0.0.7' });
    expect(repository.audit.recent(1)[0]!.actor).toEqual({
      source: 'api',
      name: 'admin',
      note: 'guarded restore, stage 1 of 3: live for 10 %',
      address: '10.0.0.7',
    });
  });

  it('a person who kills it is named; an ended ramp is never ended again', async () => {
    const ramp = await driver();
    await ramp.begin(settings, person);
    await repository.update(KILL_SWITCH, (d) => ({ ...d, state: 'DISABLED' }), { actor: { ...person, name: 'ops' } });
    await ramp.kick();
    expect(ramp.current()).toMatchObject({ status: 'stopped', reason: 'ops killed the switch during the restore' });
    await repository.update(KILL_SWITCH, (d) => ({ ...d, state: 'ENABLED' }), { actor: person });
    await ramp.kick();
    expect(ramp.current()).toMatchObject({ status: 'stopped', reason: 'ops killed the switch during the restore' });
    expect(await ends('stopped')).toBe(1);
  });

  it('judges who wrote the switch by the entry of that very version, not by the newest entry', async () => {
    const first = await driver();
    await first.begin(settings, person);
    await first.close();
    drivers = [];
    // While no instance drives: an automatic kill, then another flag's change on top of it.
    await repository.update(KILL_SWITCH, (d) => ({ ...d, state: 'DISABLED' }), {
      actor: { source: 'auto', name: 'auto-kill: circuit breaker for recommendations opened' },
    });
    await repository.update('theme', (d) => ({ ...d, defaultVariant: 'dark' }), { actor: person });
    const again = await driver();
    await again.kick();
    expect(again.current()).toMatchObject({
      status: 'rolled-back',
      reason: 'auto-kill: circuit breaker for recommendations opened',
    });
  });

  it('a rollback decided, then a person kills first: it ends rolled-back without writing over the kill', async () => {
    const first = await driver();
    await first.begin(settings, person);
    figures.services = { avatars: { calls: 3, failed: 0, breakerOpened: 1 } };
    failNextAutomaticWrite('the process died here');
    await first.kick();
    await first.close();
    drivers = [];
    await repository.update(KILL_SWITCH, (d) => ({ ...d, state: 'DISABLED', targeting: undefined }), {
      actor: { ...person, name: 'ops' },
    });
    const version = flag().version;
    const again = await driver();
    await again.kick();
    expect(again.current()).toMatchObject({ status: 'rolled-back' });
    expect(flag().version).toBe(version);
  });

  it('a rollback decided, then a person restores first: the person wins, the ramp ends stopped', async () => {
    const first = await driver();
    await first.begin(settings, person);
    figures.services = { avatars: { calls: 3, failed: 0, breakerOpened: 1 } };
    failNextAutomaticWrite('the process died here');
    await first.kick();
    await first.close();
    drivers = [];
    await repository.update(KILL_SWITCH, (d) => ({ ...d, targeting: undefined, defaultVariant: 'on' }), {
      actor: { ...person, name: 'ops' },
    });
    const again = await driver();
    await again.kick();
    expect(again.current()).toMatchObject({ status: 'stopped' });
    expect(again.current()!.reason).toMatch(/^ops changed the switch/);
    expect(flag().definition).toMatchObject({ state: 'ENABLED', defaultVariant: 'on' });
  });

  it("counts a stage from its write, before the ramp's save after it", async () => {
    const store = new FileRampStore(path.join(dir, 'flags.ramp.json'));
    const ramp = new RampDriver({
      repository,
      store,
      figures,
      lease: processLease,
      metrics,
      logger,
      now: () => clock,
      tickMs: 60_000,
    });
    await ramp.start();
    drivers.push(ramp);
    // The save after the first stage's write is slow (a busy disk, a Redis round trip).
    const save = store.save.bind(store);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let saves = 0;
    store.save = async (record, expected) => {
      if (++saves === 2) await held;
      return save(record, expected);
    };
    const begun = ramp.begin(settings, person);
    try {
      await waitFor(() => flag().definition.state === 'ENABLED', 2000, 'the first stage written');
      expect(figures.stages.at(-1)).toMatch(/:0$/);
    } finally {
      release();
    }
    expect(await begun).toMatchObject({ percent: 10 });
  });

  it('a rollback goes over a stage the ramp itself wrote meanwhile (a driver that stalled past its lease)', async () => {
    const start = flag().definition;
    const first = await driver();
    await first.begin(settings, person);
    figures.services = { avatars: { calls: 3, failed: 0, breakerOpened: 1 } };
    failNextAutomaticWrite('this driver stalls here');
    await first.kick();
    await first.close();
    drivers = [];
    // The stale driver writes the next stage over the decided rollback.
    await repository.update(KILL_SWITCH, () => stageDefinition(start, 50), {
      actor: { ...person, note: 'guarded restore, stage 2 of 3: live for 50 %' },
    });
    const again = await driver();
    await again.kick();
    expect(again.current()).toMatchObject({ status: 'rolled-back' });
    expect(flag().definition).toEqual(start);
  });

  it('does nothing while the flags are not loaded: a running ramp is not ended for want of its flag', async () => {
    const first = await driver();
    await first.begin({ ...settings, holdMs: 60_000 }, person);
    await first.close();
    drivers = [];
    const broken = new MemoryBackend(defaultFlagDocument());
    broken.loadFailure = new Error('Redis unreachable since start-up');
    repository = new FlagRepository(broken, logger, defaultFlagDocument);
    await repository.start();
    const again = await driver();
    await again.kick();
    expect(again.current()).toMatchObject({ status: 'running', percent: 10 });
  });

  it('two starts at once: one ramp, the other refused', async () => {
    const ramp = await driver();
    const results = await Promise.allSettled([ramp.begin(settings, person), ramp.begin(settings, person)]);
    expect(results.map((result) => result.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(String((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason)).toMatch(
      /already running|started just now/,
    );
  });

  it("a kill that arrives as another instance's write, naming no one, rolls back rather than blames", async () => {
    const ramp = await driver();
    await ramp.begin(settings, person);
    await repository.update(KILL_SWITCH, (d) => ({ ...d, state: 'DISABLED' }), {
      actor: { source: 'system', name: 'reload from redis' },
    });
    await ramp.kick();
    expect(ramp.current()).toMatchObject({
      status: 'rolled-back',
      reason: 'killed on another instance (reload from redis)',
    });
  });
});
