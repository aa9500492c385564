import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ServiceFigures } from '../../protocol/ramp.js';
import { defaultFlagDocument, KILL_SWITCH } from '../../server/flags/catalog.js';
import { FlagRepository } from '../../server/flags/repository.js';
import { createLogger } from '../../server/observability/logger.js';
import { createMetrics } from '../../server/observability/metrics.js';
import { RampDriver } from '../../server/ramp/driver.js';
import type { StageFigures } from '../../server/ramp/figures.js';
import { processLease } from '../../server/ramp/lease.js';
import { stageDefinition } from '../../server/ramp/plan.js';
import { FileRampStore } from '../../server/ramp/store.js';
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
  const metrics = createMetrics({ collectDefaults: false });

  async function driver(): Promise<RampDriver> {
    const made = new RampDriver({
      repository,
      store: new FileRampStore(path.join(dir, 'flags.ramp.json')),
      figures,
      lease: processLease,
      metrics,
      logger,
      now: () => clock,
      tickMs: 60_000, // the test steps it by hand
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
  });
  afterEach(async () => {
    for (const made of drivers) await made.close();
    await rm(dir, { recursive: true, force: true });
  });

  const settings = { stages: [10, 50, 100], holdMs: 1000, maxErrorRate: 0.05, minCalls: 2 };
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
    const update = repository.update.bind(repository);
    let failures = 1;
    repository.update = (key, updater, options) => {
      if (options.actor.source === 'auto' && failures-- > 0) return Promise.reject(new Error('the process died here'));
      return update(key, updater, options);
    };
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
});
