import type { AuditEntry } from './audit.js';
import type { Actor, FlagDefinition, FlagdDocument } from './types.js';

/** A flag's version and the hash of the definition it belongs to; `hash: null` once removed. */
export type VersionTable = Record<string, { version: number; hash: string | null }>;

/** What a backend holds, read whole: at start, after an outside edit, after a reconnect. */
export interface BackendSnapshot {
  document: FlagdDocument;
  /** Who the changes found in it are from ("edit of the flag file", "reload from Redis"). */
  actor: Actor;
  /** Each flag's version, when the backend keeps versions itself (Redis); otherwise the repository counts. */
  versions?: Record<string, number>;
  /** The version table the repository last asked this backend to keep (the file's), at start. */
  remembered?: VersionTable;
  /** The backend's own audit, newest first, when it keeps one that others write to (Redis). */
  audit?: AuditEntry[];
}

/** One write, for the backend to make only if the flag is still at `expected`. */
export interface FlagWrite {
  key: string;
  expected: number;
  /** The change, as its audit line (its version is `expected + 1`). */
  entry: AuditEntry;
  /** The whole document and version table once written (a file is written whole). */
  document: FlagdDocument;
  versions: VersionTable;
}

export type WriteOutcome =
  /** Written; `durable` settles once it would survive a crash (and rejects if it will not). */
  | { outcome: 'written'; durable: Promise<void> }
  /** Someone else wrote first: the flag as the backend has it now (undefined: it is gone). */
  | { outcome: 'conflict'; current: { version: number; definition: FlagDefinition } | undefined }
  /** The backend was changed outside this instance and not loaded since: load it, then write again. */
  | { outcome: 'stale' };

/** What a backend tells the repository; the repository handles each in its own order of writes. */
export type BackendEvent =
  /** The backend's state may have changed outside this instance: load it again. */
  | { type: 'reload' }
  /** One change written by another instance, as its audit line. */
  | { type: 'change'; entry: AuditEntry }
  /** The backend cannot be reached: what is held serves on, writes fail meanwhile. */
  | { type: 'unreachable'; problem: string };

export interface BackendSubscriber {
  event(event: BackendEvent): void;
  /** What the repository holds now (to re-seed a backend that lost its data). */
  held(): { document: FlagdDocument; versions: Record<string, number>; audit: AuditEntry[] } | undefined;
}

/**
 * Where the flags are kept: the small part that differs between a file and Redis. Everything
 * else (versions, what changed, compare-and-set, listeners, the audit kept in memory) is the
 * repository's, once, over any backend.
 */
export interface FlagBackend {
  readonly kind: 'file' | 'redis';
  /** Reads the whole state; throws (with the reason) when it cannot. */
  load(): Promise<BackendSnapshot>;
  compareAndSet(write: FlagWrite): Promise<WriteOutcome>;
  subscribe(subscriber: BackendSubscriber): () => void;
  /**
   * Keeps what the repository found in a snapshot (its audit lines, the new version table), for a
   * backend that does not keep them itself: the file. Redis's writers record their own.
   */
  keep?(found: { entries: AuditEntry[]; versions: VersionTable }): void;
  close(): Promise<void>;
}
