import type { AuditEntry } from '../../server/flags/audit.js';
import { toAuditEntry } from '../../server/flags/audit.js';
import type {
  BackendEvent,
  BackendSeed,
  BackendSnapshot,
  FlagBackend,
  FlagWrite,
  VersionTable,
  WriteOutcome,
} from '../../server/flags/backend.js';
import type { Actor, FlagDefinition, FlagdDocument } from '../../server/flags/types.js';

/**
 * A flag backend in memory, for unit tests of what sits on a backend (the repository, the
 * provider, the push): no disk, no Redis, no sleeps. The test plays the world around it: an
 * outside edit, another instance's write, an outage, a write that never becomes durable.
 * With `keepsHistory` it keeps versions itself, as Redis does; without, the repository counts,
 * as for the file. Made with no document, it holds nothing until it is seeded.
 */
export class MemoryBackend implements FlagBackend {
  readonly kind = 'file' as const;
  readonly keepsHistory: boolean;
  document: FlagdDocument | undefined;
  versions: Record<string, number> = {};
  /** What the repository had recorded (a file's audit lines and version table). */
  recorded: { entries: AuditEntry[]; versions: VersionTable }[] = [];
  seeds: BackendSeed[] = [];
  writes: FlagWrite[] = [];
  /** The next write is made but never becomes durable (a disk that fails the fsync). */
  failNextWrite: Error | undefined;
  /** Loads fail with this (a broken file, Redis away). */
  loadFailure: Error | undefined;
  private listener: ((event: BackendEvent) => void) | undefined;

  constructor(document: FlagdDocument | undefined, options: { keepsHistory?: boolean } = {}) {
    this.document = document && structuredClone(document);
    this.keepsHistory = options.keepsHistory ?? false;
    if (document && this.keepsHistory) for (const key of Object.keys(document.flags)) this.versions[key] = 1;
  }

  async load(): Promise<BackendSnapshot | undefined> {
    if (this.loadFailure) throw this.loadFailure;
    if (!this.document) return undefined;
    const snapshot: BackendSnapshot = {
      document: structuredClone(this.document),
      actor: { source: 'file', name: 'memory backend' },
    };
    if (this.keepsHistory) snapshot.versions = { ...this.versions };
    return snapshot;
  }

  async seed(seed: BackendSeed): Promise<void> {
    this.seeds.push(structuredClone(seed));
    if (this.document) return;
    this.document = structuredClone(seed.document);
    this.versions = Object.fromEntries(Object.entries(seed.versions).map(([key, stamp]) => [key, stamp.version]));
  }

  recordChanges(found: { entries: AuditEntry[]; versions: VersionTable }): void {
    this.recorded.push(found);
  }

  async compareAndSet(write: FlagWrite): Promise<WriteOutcome> {
    this.writes.push(write);
    const document = this.document!;
    const current = this.keepsHistory ? (this.versions[write.key] ?? 0) : write.expected;
    if (!Object.hasOwn(document.flags, write.key)) return { outcome: 'conflict', current: undefined };
    if (current !== write.expected)
      return { outcome: 'conflict', current: { version: current, definition: document.flags[write.key]! } };
    this.document = structuredClone(write.document);
    if (this.keepsHistory) this.versions[write.key] = write.expected + 1;
    const failure = this.failNextWrite;
    this.failNextWrite = undefined;
    return { outcome: 'written', durable: failure ? Promise.reject(failure) : Promise.resolve() };
  }

  subscribe(listener: (event: BackendEvent) => void): () => void {
    this.listener = listener;
    return () => (this.listener = undefined);
  }

  async close(): Promise<void> {
    this.listener = undefined;
  }

  /** Someone edits the backend by hand (a file edit): the repository is told to load it again. */
  editOutside(document: FlagdDocument): void {
    this.document = structuredClone(document);
    this.listener?.({ type: 'reload' });
  }

  /** Another instance writes one flag: the backend has it, and its change message comes. */
  writeElsewhere(
    key: string,
    definition: FlagDefinition,
    actor: Actor = { source: 'api', name: 'other instance' },
  ): AuditEntry {
    const version = (this.versions[key] ?? 1) + 1;
    const entry = toAuditEntry({
      key,
      version,
      before: this.document!.flags[key],
      after: definition,
      actor,
      at: new Date().toISOString(),
    });
    this.document = { ...this.document!, flags: { ...this.document!.flags, [key]: definition } };
    this.versions[key] = version;
    this.listener?.({ type: 'change', entry });
    return entry;
  }

  /** Another instance writes, but its message is not heard (to make a conflict). */
  writeUnheard(key: string, definition: FlagDefinition): void {
    this.document = { ...this.document!, flags: { ...this.document!.flags, [key]: definition } };
    this.versions[key] = (this.versions[key] ?? 1) + 1;
  }

  /** The backend lost everything it held (a Redis restarted without persistence). */
  wipe(): void {
    this.document = undefined;
    this.versions = {};
  }

  unreachable(problem: string): void {
    this.listener?.({ type: 'unreachable', problem });
  }

  reconnected(): void {
    this.listener?.({ type: 'reload' });
  }
}
