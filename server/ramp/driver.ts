import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { ProviderStatus } from '@openfeature/server-sdk';
import type { Ramp, RampStatus } from '../../protocol/ramp.js';
import { within } from '../bounded-wait.js';
import { ConflictError, NotFoundError, PreconditionFailedError } from '../errors.js';
import { KILL_SWITCH } from '../flags/catalog.js';
import { isKilled } from '../flags/kill-switch.js';
import type { FlagRepository } from '../flags/repository.js';
import type { Actor, FlagRecord } from '../flags/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { StageFigures } from './figures.js';
import type { DriverLease } from './lease.js';
import { guardView, judge, stageDefinition, switchVariants, type RampSettings } from './plan.js';
import { isWritten, rampView, type RampRecord, type RampStore } from './store.js';

export interface RampDriverDeps {
  repository: Pick<FlagRepository, 'get' | 'update' | 'audit' | 'onChange' | 'status'>;
  store: RampStore;
  figures: StageFigures;
  lease: DriverLease;
  metrics: Pick<Metrics, 'rampStage' | 'rampPercentLive' | 'rampEnds'>;
  logger: Logger;
  now?: () => number;
  /** How often a running ramp is looked at (and the lease renewed). */
  tickMs?: number;
}

/** The stage's figures are saved for the pages at most this often while it holds. */
const GUARD_SAVE_EVERY_MS = 1000;

const stageOf = (record: RampRecord) => `${record.id}:${record.stage}`;
/** Whether `definition` is one of this ramp's own stages, as the ramp writes them. */
const isOwnStage = (record: RampRecord, definition: FlagRecord['definition']) =>
  record.stages.some((percent) => isDeepStrictEqual(definition, stageDefinition(record.start, percent)));

/**
 * A guarded restore, as a small state machine over flag writes. Running at stage k: the kill
 * switch is live for stages[k] % of viewers; the guard judges the stage's third-party calls; it
 * advances (the next stage's write), completes after the last, or rolls back (the switch as it
 * was, written as automatic). Every write is a compare-and-set on the flag's version, so a
 * person's write in between is seen (the ramp stops, the person wins) and no stage is written
 * twice; the ramp is saved beside the flags after each write, so a restart or another instance
 * goes on from there. Every instance follows the ramp (its figures, the admin page); the one
 * holding the lease drives it.
 */
export class RampDriver {
  private record: RampRecord | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stepping: Promise<void> | undefined;
  private guardSavedAt = 0;
  private closed = false;
  private readonly listeners = new Set<(ramp: Ramp | undefined) => void>();
  private readonly unsubscribe: (() => void)[] = [];
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(private readonly deps: RampDriverDeps) {
    this.now = deps.now ?? Date.now;
    this.log = deps.logger.child({ component: 'ramp' });
  }

  /** Reads the ramp (a running one resumes) and follows it: another instance's saves, a write to the switch. */
  async start(): Promise<void> {
    this.unsubscribe.push(this.deps.store.onOutsideChange(() => void this.refresh()));
    this.unsubscribe.push(
      this.deps.repository.onChange((changes) => {
        const record = this.record;
        if (record?.status !== 'running') return;
        const change = changes.find((c) => c.key === record.key);
        if (!change) return;
        this.countFrom(record, change.after);
        void this.kick();
      }),
    );
    await this.refresh();
  }

  /** The running ramp or the last one, as this instance last read it. */
  current(): Ramp | undefined {
    return this.record && rampView(this.record);
  }

  /** The running ramp or the last one, as stored now (another instance's included). */
  async latest(): Promise<Ramp | undefined> {
    const record = await this.deps.store.load();
    return record && rampView(record);
  }

  onChange(listener: (ramp: Ramp | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Starts a ramp of the kill switch: it must be killed for everyone, and no ramp running. The
   * first stage is written before this returns when this instance may drive (it usually may).
   */
  async begin(settings: RampSettings, actor: Actor): Promise<Ramp> {
    const stored = await this.deps.store.load();
    if (stored?.status === 'running')
      throw new ConflictError(
        `A guarded restore is already running (stage ${stored.stage + 1} of ${stored.stages.length}).`,
        'ramp_running',
      );
    const flag = this.deps.repository.get(KILL_SWITCH);
    if (!flag) throw new NotFoundError(`Unknown flag "${KILL_SWITCH}".`);
    if (!isKilled(flag.definition))
      throw new ConflictError(
        'The kill switch is not killed for everyone: a guarded restore starts from a kill. Kill it first, or edit its targeting.',
        'not_killed',
      );
    switchVariants(flag.definition);
    const at = new Date(this.now()).toISOString();
    const record: RampRecord = {
      id: randomUUID(),
      key: KILL_SWITCH,
      status: 'running',
      ...settings,
      stage: 0,
      percent: 0,
      startedAt: at,
      stageStartedAt: at,
      actor,
      revision: (stored?.revision ?? 0) + 1,
      flagVersion: flag.version,
      start: flag.definition,
    };
    if (!(await this.deps.store.save(record, stored?.revision ?? 0)))
      throw new ConflictError('Another guarded restore started just now.', 'ramp_running');
    this.log.info({ ramp: record.id, stages: record.stages, holdMs: record.holdMs }, 'guarded restore started');
    this.adopt(record);
    await within(this.kick(), 3000);
    return this.current()!;
  }

  /** Looks at the ramp now (one look at a time). */
  kick(): Promise<void> {
    this.stepping ??= this.step()
      .catch((error: unknown) => this.log.error({ err: error }, 'guarded restore: a step failed; trying again'))
      .finally(() => (this.stepping = undefined));
    return this.stepping;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.unsubscribe.forEach((stop) => stop());
    await this.stepping;
    await this.deps.lease.release();
    await this.deps.figures.close();
    await this.deps.store.close();
  }

  private async refresh(): Promise<void> {
    try {
      this.adopt(await this.deps.store.load());
    } catch (error) {
      this.log.warn({ err: error }, 'could not read the guarded restore; will read it again');
    }
  }

  /**
   * A stage is counted from its write, as every instance hears of it (the pages it makes live
   * refetch at once), not from the ramp's save after it: by then, on a busy core, the stage's
   * first calls may be over.
   */
  private countFrom(record: RampRecord, written: FlagRecord['definition'] | undefined): void {
    const next = isWritten(record) ? record.stage + 1 : record.stage;
    if (next >= record.stages.length) return;
    if (isDeepStrictEqual(written, stageDefinition(record.start, record.stages[next]!)))
      this.deps.figures.begin(`${record.id}:${next}`);
  }

  /** What this instance knows of the ramp: its counting, its gauges, its pages, its ticking. */
  private adopt(record: RampRecord | undefined): void {
    // A read that left before a newer save landed: what this instance holds is newer.
    if (record && this.record && record.id === this.record.id && record.revision < this.record.revision) return;
    const changed = record?.revision !== this.record?.revision || record?.id !== this.record?.id;
    this.record = record;
    const running = record?.status === 'running';
    this.deps.figures.begin(running && isWritten(record) ? stageOf(record) : undefined);
    this.deps.metrics.rampStage.set(running ? record.stage : -1);
    this.deps.metrics.rampPercentLive.set(running ? record.percent : 0);
    if (running && !this.timer && !this.closed)
      this.timer = setInterval(() => void this.kick(), this.deps.tickMs ?? 250).unref();
    if (!running && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    if (changed) for (const listener of this.listeners) listener(record && rampView(record));
  }

  private async step(): Promise<void> {
    if (this.closed || !(await this.deps.lease.hold())) return;
    const record = await this.deps.store.load();
    this.adopt(record);
    if (record?.status !== 'running') return;
    // Flags not loaded yet (a restart while the store is away): nothing to judge by, nothing to end.
    if (this.deps.repository.status().status !== ProviderStatus.READY) return;
    const flag = this.deps.repository.get(record.key);
    if (!flag) return void (await this.end(record, 'stopped', 'the kill switch was removed'));
    if (record.rollingBack !== undefined) return this.finishRollback(record, flag);
    const next = isWritten(record) ? record.stage + 1 : record.stage;
    if (flag.version !== record.flagVersion) {
      // Our own write, made before a stop or a crash kept it from being saved: go on from it.
      const ours =
        next < record.stages.length &&
        flag.version === record.flagVersion + 1 &&
        isDeepStrictEqual(flag.definition, stageDefinition(record.start, record.stages[next]!));
      return ours
        ? void (await this.saveStage(record, next, flag.version, this.writtenAt(record.key, flag.version)))
        : this.endByOther(record, flag);
    }
    if (!isWritten(record)) return this.writeStage(record, next);
    const services = await this.deps.figures.read(stageOf(record));
    const verdict = judge(services, record, record.percent, this.now() - Date.parse(record.stageStartedAt));
    if (verdict.action === 'rollback') return this.rollback(record, flag, verdict.reason);
    if (verdict.action === 'advance') {
      if (next >= record.stages.length) return void (await this.end(record, 'completed', verdict.said));
      return this.writeStage(record, next, verdict.enough ? undefined : verdict.said);
    }
    const guard = guardView(services, verdict);
    if (!isDeepStrictEqual(guard, record.guard) && this.now() - this.guardSavedAt >= GUARD_SAVE_EVERY_MS) {
      this.guardSavedAt = this.now();
      await this.save(record, { guard });
    }
  }

  /** One stage's write: the switch live for the stage's share, audited under the token that started the ramp. */
  private async writeStage(record: RampRecord, index: number, sparse?: string): Promise<void> {
    const percent = record.stages[index]!;
    const note = `guarded restore, stage ${index + 1} of ${record.stages.length}: live for ${percent} %${sparse ? ` (${sparse})` : ''}`;
    let written: FlagRecord;
    const writtenAt = this.now();
    try {
      written = await this.deps.repository.update(record.key, () => stageDefinition(record.start, percent), {
        ifMatch: [record.flagVersion],
        actor: { ...(record.actor as Actor), note },
      });
    } catch (error) {
      // Someone wrote first: the next look sees their write and stops the ramp.
      if (!(error instanceof PreconditionFailedError))
        this.log.warn({ err: error }, 'guarded restore: the stage could not be written; trying again');
      return;
    }
    this.log.info(
      { ramp: record.id, stage: index, percent, version: written.version },
      'guarded restore: stage written',
    );
    await this.saveStage(record, index, written.version, writtenAt);
  }

  /** The stage saved as written at `writtenAt`: its hold counts from the write, not from this save. */
  private saveStage(record: RampRecord, index: number, flagVersion: number, writtenAt: number) {
    const { guard: _previous, ...rest } = record;
    return this.save(rest, {
      stage: index,
      percent: record.stages[index]!,
      flagVersion,
      stageStartedAt: new Date(writtenAt).toISOString(),
    });
  }

  /** When the flag was written at `version`, as its audit entry says (now, if the entry is gone). */
  private writtenAt(key: string, version: number): number {
    const entry = this.deps.repository.audit.recent(50).find((e) => e.key === key && e.version === version);
    return entry ? Date.parse(entry.at) : this.now();
  }

  /** The reason is saved first, then the switch written back as it was: a restart in between finishes the rollback. */
  private async rollback(record: RampRecord, flag: FlagRecord, reason: string): Promise<void> {
    const saved = await this.save(record, { rollingBack: reason });
    if (saved) await this.finishRollback(saved, flag);
  }

  private async finishRollback(record: RampRecord, flag: FlagRecord): Promise<void> {
    const reason = record.rollingBack!;
    if (flag.version !== record.flagVersion) {
      if (isKilled(flag.definition)) return void (await this.end(record, 'rolled-back', reason));
      // A stage written meanwhile by the ramp itself (a driver that stalled past its lease): the
      // rollback goes over it. Anyone else's write is theirs.
      if (!isOwnStage(record, flag.definition)) return this.endByOther(record, flag);
    }
    try {
      await this.deps.repository.update(record.key, () => record.start, {
        ifMatch: [flag.version],
        actor: { source: 'auto', name: `guarded restore rolled back: ${reason}` },
      });
    } catch (error) {
      if (!(error instanceof PreconditionFailedError))
        this.log.warn({ err: error }, 'guarded restore: the rollback could not be written; trying again');
      return;
    }
    this.log.warn({ ramp: record.id, reason }, 'guarded restore rolled back: the kill switch is killed again');
    await this.end(record, 'rolled-back', reason);
  }

  /** Someone else wrote the switch: a person stops the ramp; an automatic kill (AUTO_KILL) rolls it back. */
  private async endByOther(record: RampRecord, flag: FlagRecord): Promise<void> {
    const entry = this.deps.repository.audit.recent(50).find((e) => e.key === record.key && e.version === flag.version);
    const actor = entry?.actor;
    if (actor?.source === 'auto') return void (await this.end(record, 'rolled-back', actor.name));
    // A kill seen only as a reload (another instance's write that won a compare-and-set here): no
    // person is named, and a kill during a ramp is what a rollback does.
    if (actor?.source === 'system' && isKilled(flag.definition))
      return void (await this.end(record, 'rolled-back', `killed on another instance (${actor.name})`));
    const who = actor ? `${actor.name}${actor.note ? ` (${actor.note})` : ''}` : 'someone';
    const what = isKilled(flag.definition)
      ? 'killed the switch'
      : `changed the switch (${entry?.summary ?? 'a new version'})`;
    await this.end(record, 'stopped', `${who} ${what} during the restore`);
  }

  private async end(record: RampRecord, status: Exclude<RampStatus, 'running'>, reason: string) {
    const { rollingBack: _done, ...rest } = record;
    const saved = await this.save(rest, { status, reason, endedAt: new Date(this.now()).toISOString() });
    if (!saved) return;
    this.deps.metrics.rampEnds.inc({ status });
    this.log[status === 'completed' ? 'info' : 'warn'](
      { ramp: record.id, status, reason },
      `guarded restore ${status}`,
    );
  }

  /** A compare-and-set on the ramp's revision; undefined when another save came first (the next look reads it). */
  private async save(record: RampRecord, change: Partial<RampRecord>): Promise<RampRecord | undefined> {
    const next: RampRecord = { ...record, ...change, revision: record.revision + 1 };
    if (!(await this.deps.store.save(next, record.revision))) return undefined;
    this.adopt(next);
    return next;
  }
}
