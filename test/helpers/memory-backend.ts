import type { AuditEntry } from '../../server/flags/audit.js';
import { toAuditEntry } from '../../server/flags/audit.js';
import type { BackendSnapshot, BackendSubscriber, FlagBackend, FlagWrite, VersionTable, WriteOutcome } from '../../server/flags/backend.js';
import type { Actor, FlagDefinition, FlagdDocument } from '../../server/flags/types.js';

/**
 * A flag backend in memory, for unit tests of what sits on a backend (the repository, the
 * provider, the push): no disk, no Redis, no sleeps. The test plays the world around it: an
 * outside edit, another instance's write, an outage, a write that never becomes durable.
 * With `keepsVersions` it keeps versions itself, as Redis does; without, the repository counts,
 * as for the file.
 */
export class MemoryBackend implements FlagBackend {
  readonly kind = 'file' as const;
  document: FlagdDocument;
  versions: Record<string, number> = {};
  /** What the repository asked to keep (a file's audit lines and version table). */
  kept: { entries: AuditEntry[]; versions: VersionTable }[] = [];
  writes: FlagWrite[] = [];
  /** The next write is made but never becomes durable (a disk that fails the fsync). */
  failNextWrite: Error | undefined;
  /** Loads fail with this (a broken file, Redis away). */
  loadFailure: Error | undefined;
  private subscriber: BackendSubscriber | undefined;

  constructor(
    document: FlagdDocument,
    private readonly options: { keepsVersions?: boolean } = {},
  ) {
    this.document = structuredClone(document);
    if (options.keepsVersions) for (const key of Object.keys(document.flags)) this.versions[key] = 1;
    if (!options.keepsVersions) this.keep = (found) => void this.kept.push(found);
  }

  keep?: FlagBackend['keep'];

  async load(): Promise<BackendSnapshot> {
    if (this.loadFailure) throw this.loadFailure;
    const snapshot: BackendSnapshot = { document: structuredClone(this.document), actor: { source: 'file', name: 'memory backend' } };
    if (this.options.keepsVersions) snapshot.versions = { ...this.versions };
    return snapshot;
  }

  async compareAndSet(write: FlagWrite): Promise<WriteOutcome> {
    this.writes.push(write);
    const current = this.options.keepsVersions ? (this.versions[write.key] ?? 0) : write.expected;
    if (!Object.hasOwn(this.document.flags, write.key)) return { outcome: 'conflict', current: undefined };
    if (current !== write.expected) return { outcome: 'conflict', current: { version: current, definition: this.document.flags[write.key]! } };
    this.document = structuredClone(write.document);
    if (this.options.keepsVersions) this.versions[write.key] = write.expected + 1;
    const failure = this.failNextWrite;
    this.failNextWrite = undefined;
    return { outcome: 'written', durable: failure ? Promise.reject(failure) : Promise.resolve() };
  }

  subscribe(subscriber: BackendSubscriber): () => void {
    this.subscriber = subscriber;
    return () => (this.subscriber = undefined);
  }

  async close(): Promise<void> {
    this.subscriber = undefined;
  }

  /** Someone edits the backend by hand (a file edit): the repository is told to load it again. */
  editOutside(document: FlagdDocument): void {
    this.document = structuredClone(document);
    this.subscriber?.event({ type: 'reload' });
  }

  /** Another instance writes one flag: the backend has it, and its change message comes. */
  writeElsewhere(key: string, definition: FlagDefinition, actor: Actor = { source: 'api', name: 'other instance' }): AuditEntry {
    const version = (this.versions[key] ?? 1) + 1;
    const entry = toAuditEntry({ key, version, before: this.document.flags[key], after: definition, actor, at: new Date().toISOString() });
    this.document = { ...this.document, flags: { ...this.document.flags, [key]: definition } };
    this.versions[key] = version;
    this.subscriber?.event({ type: 'change', entry });
    return entry;
  }

  /** Another instance writes, but its message is not heard (to make a conflict). */
  writeUnheard(key: string, definition: FlagDefinition): void {
    this.document = { ...this.document, flags: { ...this.document.flags, [key]: definition } };
    this.versions[key] = (this.versions[key] ?? 1) + 1;
  }

  unreachable(problem: string): void {
    this.subscriber?.event({ type: 'unreachable', problem });
  }

  reconnected(): void {
    this.subscriber?.event({ type: 'reload' });
  }

  held() {
    return this.subscriber?.held();
  }
}
