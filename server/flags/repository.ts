import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { SerialQueue } from '../concurrency/serial-queue.js';
import { NotFoundError, PreconditionFailedError, ServiceUnavailableError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { AUDIT_CAPACITY, toAuditEntry, type AuditEntry, type AuditReader } from './audit.js';
import type { BackendEvent, BackendSnapshot, FlagBackend, VersionTable } from './backend.js';
import type { Actor, FlagChange, FlagDefinition, FlagdDocument, FlagRecord } from './types.js';

export interface UpdateOptions {
  /** Compare-and-set: the write happens only if the flag is still at this version. */
  ifMatch?: number | undefined;
  actor: Actor;
}

/** Turns the current definition into the next one; throws (a 400) when the result is not valid. */
export type FlagUpdater = (current: FlagDefinition) => FlagDefinition;

export type ChangeListener = (changes: FlagChange[]) => void;

/**
 * Whether the flags can be trusted: `ready`; `stale` (the backend is out of reach: the last flags
 * it gave serve on, writes fail); `error` (nothing could be loaded: every flag serves its safe
 * code default, the kill switch killed); `loading` before the first load ends.
 */
export type FlagsHealth = { state: 'loading' } | { state: 'ready' } | { state: 'stale'; problem: string } | { state: 'error'; problem: string };

/** JSON with object members sorted, so that equal definitions hash equally whatever their order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const members = Object.keys(value)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value);
}

export function definitionHash(definition: FlagDefinition): string {
  return createHash('sha256').update(canonicalJson(definition)).digest('base64url');
}

/**
 * The one rule for what changed, whatever told of it (a write here, a hand edit of the file, a
 * reload from Redis, another instance's write, a restart after a crash between the file and its
 * versions): a flag changed when the hash of its definition is not the one held. Its version is
 * the backend's when the backend keeps versions (Redis), otherwise one more than held.
 */
export function decide(
  known: VersionTable[string] | undefined,
  after: FlagDefinition | undefined,
  backendVersion: number | undefined,
): { changed: boolean; entry: VersionTable[string] | undefined } {
  const hash = after ? definitionHash(after) : null;
  if ((known?.hash ?? null) === hash) {
    const version = backendVersion ?? known?.version;
    return { changed: false, entry: version === undefined ? undefined : { version, hash } };
  }
  return { changed: true, entry: { version: backendVersion ?? (known?.version ?? 0) + 1, hash } };
}

/**
 * The flags this instance serves, over one backend (a file, or Redis). It owns the document, each
 * flag's version, what changed (one rule: `decide`), compare-and-set, the listeners and the audit
 * kept in memory; the backend only loads, writes if still at a version, and tells of outside
 * changes. Every write and every outside change is applied in one order (a serial queue), and
 * every applied change is announced once, with its version, to the listeners.
 */
export class FlagRepository {
  readonly kind: FlagBackend['kind'];
  private doc: FlagdDocument = { flags: {} };
  private versions: VersionTable = {};
  /** Newest first. */
  private entries: AuditEntry[] = [];
  private current: FlagsHealth = { state: 'loading' };
  private loaded = false;
  private readonly queue = new SerialQueue();
  private readonly changeListeners = new Set<ChangeListener>();
  private readonly healthListeners = new Set<(health: FlagsHealth) => void>();
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly backend: FlagBackend,
    private readonly logger: Logger,
  ) {
    this.kind = backend.kind;
  }

  /** Loads the flags (or records why it cannot: the safe defaults serve meanwhile) and follows the backend. */
  async start(): Promise<void> {
    this.unsubscribe ??= this.backend.subscribe({
      event: (event) => this.handle(event),
      held: () =>
        this.loaded
          ? { document: this.doc, versions: Object.fromEntries(Object.entries(this.versions).map(([key, { version }]) => [key, version])), audit: this.entries }
          : undefined,
    });
    await this.queue.run(() => this.reload());
  }

  health(): FlagsHealth {
    return this.current;
  }

  onHealth(listener: (health: FlagsHealth) => void): () => void {
    this.healthListeners.add(listener);
    return () => this.healthListeners.delete(listener);
  }

  document(): FlagdDocument {
    return this.doc;
  }

  /** Every flag, sorted by key. */
  list(): FlagRecord[] {
    return Object.keys(this.doc.flags)
      .sort()
      .map((key) => this.get(key)!);
  }

  get(key: string): FlagRecord | undefined {
    if (!Object.hasOwn(this.doc.flags, key)) return undefined;
    return { key, version: this.versionOf(key), definition: this.doc.flags[key]! };
  }

  /** The version pushed with flag_update: it grows with every change of the flag (1 when none is recorded). */
  versionOf(key: string): number {
    return this.versions[key]?.version ?? 1;
  }

  readonly audit: AuditReader = {
    recent: (limit = 50) => this.entries.slice(0, limit),
  };

  onChange(listener: ChangeListener): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /**
   * Writes one flag: the backend sets it only if it is still at the version this instance holds
   * (another instance may have written first: then that write is applied, and the update is tried
   * again on it, or answered 412 with If-Match). Browsers are told as soon as the backend has it;
   * the promise resolves once it is durable. If it never becomes durable, the change is undone
   * (and the undo announced) and the caller gets a 503: nothing acknowledged is ever lost.
   */
  update(key: string, updater: FlagUpdater, options: UpdateOptions): Promise<FlagRecord> {
    return this.queue.run(async () => {
      // Not loaded: still loading, or nothing could be loaded (the only time health is `error`).
      if (!this.loaded) {
        throw new ServiceUnavailableError(`The flags could not be loaded (${'problem' in this.current ? this.current.problem : 'still loading'}): fix that before writing; nothing was changed.`);
      }
      for (let attempt = 0; attempt < 20; attempt++) {
        const current = this.get(key);
        if (!current) throw new NotFoundError(`Unknown flag "${key}".`);
        if (options.ifMatch !== undefined && options.ifMatch !== current.version) {
          throw new PreconditionFailedError(
            `Flag "${key}" is at version ${current.version}, not ${options.ifMatch}: someone changed it first. Read it again and retry.`,
            { currentVersion: current.version },
          );
        }
        const next = updater(current.definition);
        // A write that changes nothing is not a write: no new version, no audit line, no push.
        if (isDeepStrictEqual(next, current.definition)) return current;
        const change: FlagChange = { key, version: current.version + 1, before: current.definition, after: next, actor: options.actor, at: new Date().toISOString() };
        const entry = toAuditEntry(change);
        const document: FlagdDocument = { ...this.doc, flags: { ...this.doc.flags, [key]: next } };
        const versions: VersionTable = { ...this.versions, [key]: { version: change.version, hash: definitionHash(next) } };
        const result = await this.backend.compareAndSet({ key, expected: current.version, entry, document, versions });
        if (result.outcome === 'stale') {
          await this.reload();
          continue;
        }
        if (result.outcome === 'conflict') {
          this.applyOne(key, result.current?.definition, result.current?.version, { source: 'system', name: `reload from ${this.kind}` });
          continue;
        }
        const previous = { doc: this.doc, versions: this.versions };
        this.doc = document;
        this.versions = versions;
        this.remember([entry]);
        this.announce([change]);
        try {
          await result.durable;
        } catch (error) {
          this.undo(change, previous, error as Error);
        }
        return this.get(key)!;
      }
      throw new ServiceUnavailableError(`Flag "${key}" is being written by others too often; try again.`);
    });
  }

  /** Resolves once every write and outside change queued so far is applied. */
  idle(): Promise<void> {
    return this.queue.run(async () => undefined);
  }

  async close(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.idle();
    await this.backend.close();
  }

  private handle(event: BackendEvent): void {
    if (event.type === 'reload') {
      void this.queue.run(() => this.reload());
    } else if (event.type === 'change') {
      const { entry } = event;
      void this.queue.run(async () => {
        // A change message older than what is held (sent before a reload that already had it).
        if (entry.version <= (this.versions[entry.key]?.version ?? 0)) return;
        this.applyOne(entry.key, entry.after ?? undefined, entry.version, entry.actor, entry);
      });
    } else if (this.loaded) {
      this.setHealth({ state: 'stale', problem: event.problem });
    }
  }

  private async reload(): Promise<void> {
    let snapshot: BackendSnapshot;
    try {
      snapshot = await this.backend.load();
    } catch (error) {
      const problem = (error as Error).message;
      // Loaded before: the last good flags serve on (the backend has said why).
      if (!this.loaded) this.setHealth({ state: 'error', problem });
      else if (this.current.state === 'stale') this.setHealth({ state: 'stale', problem });
      return;
    }
    if (!this.loaded && snapshot.remembered) this.versions = snapshot.remembered;
    const at = new Date().toISOString();
    const versions: VersionTable = { ...this.versions };
    const changes: FlagChange[] = [];
    for (const key of new Set([...Object.keys(this.versions), ...Object.keys(this.doc.flags), ...Object.keys(snapshot.document.flags)])) {
      const after = snapshot.document.flags[key];
      const { changed, entry } = decide(versions[key], after, snapshot.versions?.[key]);
      if (entry) versions[key] = entry;
      if (changed) changes.push({ key, version: entry!.version, before: this.doc.flags[key], after, actor: snapshot.actor, at });
    }
    this.doc = snapshot.document;
    this.versions = versions;
    if (snapshot.audit) this.entries = snapshot.audit.slice(0, AUDIT_CAPACITY);
    // A backend that keeps its own audit has the lines of what was found; the file is told of them.
    if (this.backend.keep && changes.length > 0) {
      const entries = changes.map(toAuditEntry);
      this.remember(entries);
      this.backend.keep({ entries, versions });
    }
    const first = !this.loaded;
    this.loaded = true;
    if (this.current.state !== 'ready') this.setHealth({ state: 'ready' });
    this.logger.info({ flags: Object.keys(this.doc.flags).length, changed: changes.length }, first ? `flags loaded from ${this.kind}` : `flags reloaded from ${this.kind}`);
    this.announce(changes);
  }

  /** One flag as the backend has it now (another instance's write), by the same rule. */
  private applyOne(key: string, after: FlagDefinition | undefined, backendVersion: number | undefined, actor: Actor, entry?: AuditEntry): void {
    const { changed, entry: version } = decide(this.versions[key], after, backendVersion);
    if (!version) return;
    this.versions = { ...this.versions, [key]: version };
    if (!changed) return;
    const change: FlagChange = { key, version: version.version, before: this.doc.flags[key], after, actor, at: entry?.at ?? new Date().toISOString() };
    const flags = { ...this.doc.flags };
    if (after) flags[key] = after;
    else delete flags[key];
    this.doc = { ...this.doc, flags };
    this.remember([entry ?? toAuditEntry(change)]);
    this.announce([change]);
  }

  private undo(change: FlagChange, previous: { doc: FlagdDocument; versions: VersionTable }, failure: Error): never {
    this.logger.error({ err: failure }, `could not save the flags to ${this.kind}: the change is undone`);
    this.doc = previous.doc;
    this.versions = previous.versions;
    const undo: FlagChange = {
      key: change.key,
      // Back to the version it had: the write was made at the one after it.
      version: change.version - 1,
      before: change.after,
      after: change.before,
      actor: { source: 'system', name: 'undo of an unsaved write' },
      at: new Date().toISOString(),
    };
    const entry = toAuditEntry(undo);
    this.remember([entry]);
    this.backend.keep?.({ entries: [entry], versions: previous.versions });
    // Announced like any change, so the audit says exactly what browsers saw.
    this.announce([undo]);
    throw new ServiceUnavailableError(`Could not save the flags: ${failure.message}. Nothing was changed.`);
  }

  private remember(entries: AuditEntry[]): void {
    this.entries = [...entries.slice().reverse(), ...this.entries].slice(0, AUDIT_CAPACITY);
  }

  private setHealth(health: FlagsHealth): void {
    this.current = health;
    for (const listener of this.healthListeners) listener(health);
  }

  private announce(changes: FlagChange[]): void {
    if (changes.length === 0) return;
    for (const listener of this.changeListeners) {
      try {
        listener(changes);
      } catch (error) {
        this.logger.error({ err: error }, 'a flag change listener failed');
      }
    }
  }
}
