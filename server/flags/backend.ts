import type { AuditEntry } from './audit.js';
import type { Actor, FlagDefinition, FlagdDocument } from './types.js';

/** A flag's version and the hash of the definition it was given to; `hash: null` once removed. */
export interface VersionStamp {
  version: number;
  hash: string | null;
}

/** Every flag's stamp, by key. */
export type VersionTable = Record<string, VersionStamp>;

/** What a backend holds, read whole: at start, after an outside edit, after a reconnect. */
export interface BackendSnapshot {
  document: FlagdDocument;
  /** Who the changes found in it are from ("edit of the flag file", "reload from Redis"). */
  actor: Actor;
  /** Each flag's version, when the backend's writers keep them (Redis); otherwise the repository counts. */
  versions?: Record<string, number>;
  /** The stamps the repository last had recorded here (the file's table), at start. */
  recorded?: VersionTable;
  /** The audit kept here, newest first (read at start, or whenever other writers add to it). */
  audit?: AuditEntry[];
}

/** What a backend is seeded with when it holds nothing yet (a first start, a Redis that lost its data). */
export interface BackendSeed {
  document: FlagdDocument;
  versions: VersionTable;
  /** Oldest first. */
  audit: AuditEntry[];
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

/**
 * Where the flags are kept: the small part that differs between a file and Redis. The seam runs
 * one way: the repository tells a backend what to write (a flag with its version and audit line,
 * a seed, the changes it found), and the backend tells the repository, through its events, what
 * changed outside. Everything else (versions, what changed, compare-and-set, listeners, the audit
 * in memory) is the repository's, once, over any backend.
 */
export interface FlagBackend {
  readonly kind: 'file' | 'redis';
  /**
   * Whether its own writers record versions and audit lines (Redis, in the write's script). When
   * not (the file), the repository counts versions and has it record the changes it finds.
   */
  readonly keepsHistory: boolean;
  /** Reads the whole state; undefined when it holds nothing yet. Throws (with the reason) when it cannot. */
  load(): Promise<BackendSnapshot | undefined>;
  /** Stores this state if it still holds nothing (several instances may seed at once: one wins). */
  seed(seed: BackendSeed): Promise<void>;
  compareAndSet(write: FlagWrite): Promise<WriteOutcome>;
  /** For a backend that does not keep history itself: record these changes found outside, and the new stamps. */
  recordChanges(found: { entries: AuditEntry[]; versions: VersionTable }): void;
  /** Starts telling `listener` of outside changes; returns the way to stop. */
  subscribe(listener: (event: BackendEvent) => void): () => void;
  close(): Promise<void>;
}
