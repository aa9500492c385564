import { readFile } from 'node:fs/promises';
import writeFileAtomic from 'write-file-atomic';
import type { Ramp } from '../../protocol/ramp.js';
import type { FlagDefinition } from '../flags/types.js';
import { SerialQueue } from '../concurrency/serial-queue.js';
import { PRIVATE_FILE_MODE } from '../store-files.js';

/** A ramp as it is kept: what the page sees, and what the driver needs to go on after a restart. */
export interface RampRecord extends Ramp {
  /** Grows with every save: a save names the revision it read, so two writers never both win. */
  revision: number;
  /** The kill switch's version as the ramp last wrote it (or found it, at the start). */
  flagVersion: number;
  /** The kill switch when the ramp started: what a rollback writes back. */
  start: FlagDefinition;
  /** A rollback decided, its write not yet confirmed: the reason. */
  rollingBack?: string;
}

/** Whether the ramp's current stage has been written (0 % live until the first is). */
export const isWritten = (record: RampRecord) => record.percent === record.stages[record.stage];

/** What the API and the page are shown: the record without what only the driver reads. */
export function rampView(record: RampRecord): Ramp {
  const { revision: _r, flagVersion: _v, start: _s, rollingBack: _b, ...view } = record;
  return record.status === 'running' && isWritten(record)
    ? { ...view, nextStageAt: new Date(Date.parse(record.stageStartedAt) + record.holdMs).toISOString() }
    : view;
}

/**
 * Where the ramp is kept, beside the flags (the file's folder, or Redis): a restart resumes it,
 * and with several instances every one reads the same. A save is a compare-and-set on the revision.
 */
export interface RampStore {
  readonly kind: 'file' | 'redis';
  /** The running ramp, or the last one; undefined when there never was one. */
  load(): Promise<RampRecord | undefined>;
  /** Saves `record` (its revision is `expected + 1`) if the stored one is still at `expected` (0: none). */
  save(record: RampRecord, expected: number): Promise<boolean>;
  /** Tells `listener` of a save by another instance (Redis); returns the way to stop. */
  onOutsideChange(listener: () => void): () => void;
  close(): Promise<void>;
}

/**
 * The ramp in a file beside the flag file (0600, written atomically and synced): one process
 * drives it, so the revision is checked in memory.
 */
export class FileRampStore implements RampStore {
  readonly kind = 'file';
  private held: RampRecord | undefined;
  private read = false;
  /** Saves in turn: a compare-and-set is a read and a write with no await between another's. */
  private readonly queue = new SerialQueue();

  constructor(private readonly file: string) {}

  async load(): Promise<RampRecord | undefined> {
    if (!this.read) {
      try {
        this.held = JSON.parse(await readFile(this.file, 'utf8')) as RampRecord;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
      this.read = true;
    }
    return this.held;
  }

  save(record: RampRecord, expected: number): Promise<boolean> {
    return this.queue.run(async () => {
      if (((await this.load())?.revision ?? 0) !== expected) return false;
      await writeFileAtomic(this.file, `${JSON.stringify(record, null, 2)}\n`, { mode: PRIVATE_FILE_MODE });
      this.held = record;
      return true;
    });
  }

  onOutsideChange(): () => void {
    return () => undefined;
  }

  async close(): Promise<void> {}
}
