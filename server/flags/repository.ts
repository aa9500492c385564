import { hash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { ProviderStatus } from '@openfeature/server-sdk';
import { SerialQueue } from '../concurrency/serial-queue.js';
import { NotFoundError, PreconditionFailedError, ServiceUnavailableError } from '../errors.js';
import { flipStep } from '../observability/flip-trace.js';
import type { Logger } from '../observability/logger.js';
import { AUDIT_CAPACITY, toAuditEntry, type AuditEntry, type AuditReader } from './audit.js';
import type { BackendEvent, BackendSeed, BackendSnapshot, FlagBackend, VersionStamp, VersionTable } from './backend.js';
import type { Actor, FlagChange, FlagDefinition, FlagdDocument, FlagRecord } from './types.js';

export interface UpdateOptions {
  /**
   * If-Match: the versions the caller names (RFC 9110's entity-tags, opaque); the write happens
   * only if the flag is at one of them when its turn comes. Undefined: no precondition.
   */
  ifMatch?: readonly number[] | undefined;
  actor: Actor;
}

/** Turns the current definition into the next one; throws (a 400) when the result is not valid. */
export type FlagUpdater = (current: FlagDefinition) => FlagDefinition;

export type ChangeListener = (changes: FlagChange[]) => void;

/**
 * Whether the flags can be trusted, in OpenFeature's words: READY; STALE (the backend is out of
 * reach: the last flags it gave serve on, writes fail); ERROR (nothing could be loaded: every flag
 * serves its safe code default, the kill switch killed); NOT_READY before the first load ends.
 * `message` says why, for STALE and ERROR.
 */
export interface RepositoryStatus {
  status: ProviderStatus;
  message?: string;
}

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
  return hash('sha256', canonicalJson(definition), 'base64url');
}

/**
 * The one rule for what changed, whatever told of it (a write here, a hand edit of the file, a
 * reload from Redis, another instance's write, a restart after a crash between the file and its
 * versions): a flag changed when the hash of its definition is not the one held. Its version is
 * the backend's when the backend keeps versions (Redis), otherwise one more than held.
 */
export function decide(
  known: VersionStamp | undefined,
  after: FlagDefinition | undefined,
  backendVersion: number | undefined,
): { changed: boolean; stamp: VersionStamp | undefined } {
  const hash = after ? definitionHash(after) : null;
  if ((known?.hash ?? null) === hash) {
    const version = backendVersion ?? known?.version;
    return { changed: false, stamp: version === undefined ? undefined : { version, hash } };
  }
  return { changed: true, stamp: { version: backendVersion ?? (known?.version ?? 0) + 1, hash } };
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
  private stamps: VersionTable = {};
  /** Newest first. */
  private auditEntries: AuditEntry[] = [];
  private state: RepositoryStatus = { status: ProviderStatus.NOT_READY };
  private loaded = false;
  private readonly queue = new SerialQueue();
  private readonly changeListeners = new Set<ChangeListener>();
  private readonly statusListeners = new Set<(status: RepositoryStatus) => void>();
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly backend: FlagBackend,
    private readonly logger: Logger,
    /** What an empty backend is seeded with at a first start. */
    private readonly defaults: () => FlagdDocument,
  ) {
    this.kind = backend.kind;
  }

  /** Loads the flags (or records why it cannot: the safe defaults serve meanwhile) and follows the backend. */
  async start(): Promise<void> {
    this.unsubscribe ??= this.backend.subscribe((event) => this.handle(event));
    await this.queue.run(() => this.reload());
  }

  status(): RepositoryStatus {
    return this.state;
  }

  onStatus(listener: (status: RepositoryStatus) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
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
    return this.stamps[key]?.version ?? 1;
  }

  readonly audit: AuditReader = {
    recent: (limit = 50) => this.auditEntries.slice(0, limit),
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
      flipStep('repository turn');
      if (!this.loaded) {
        throw new ServiceUnavailableError(
          `The flags could not be loaded (${this.state.message ?? 'still loading'}): fix that before writing; nothing was changed.`,
        );
      }
      for (let attempt = 0; attempt < 20; attempt++) {
        const current = this.get(key);
        if (!current) throw new NotFoundError(`Unknown flag "${key}".`);
        if (options.ifMatch !== undefined && !options.ifMatch.includes(current.version)) {
          throw new PreconditionFailedError(
            `Flag "${key}" is at version ${current.version} (ETag "${current.version}"), which If-Match does not name: someone changed it first. Read it again and retry.`,
            { currentVersion: current.version },
          );
        }
        const next = updater(current.definition);
        flipStep('validated');
        // A write that changes nothing is not a write: no new version, no audit line, no push.
        if (isDeepStrictEqual(next, current.definition)) return current;
        const change: FlagChange = {
          key,
          version: current.version + 1,
          before: current.definition,
          after: next,
          actor: options.actor,
          at: new Date().toISOString(),
        };
        const entry = toAuditEntry(change);
        const document: FlagdDocument = { ...this.doc, flags: { ...this.doc.flags, [key]: next } };
        const stamps: VersionTable = { ...this.stamps, [key]: { version: change.version, hash: definitionHash(next) } };
        const result = await this.backend.compareAndSet({
          key,
          expected: current.version,
          entry,
          document,
          versions: stamps,
        });
        flipStep('compare-and-set');
        if (result.outcome === 'stale') {
          await this.reload();
          continue;
        }
        if (result.outcome === 'conflict') {
          this.applyOne(key, result.current?.definition, result.current?.version, {
            source: 'system',
            name: `reload from ${this.kind}`,
          });
          continue;
        }
        const previous = { doc: this.doc, stamps: this.stamps };
        this.doc = document;
        this.stamps = stamps;
        this.remember([entry]);
        this.announce([change]);
        flipStep('announced');
        try {
          await result.durable;
          flipStep('durable');
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
        if (entry.version <= (this.stamps[entry.key]?.version ?? 0)) return;
        this.applyOne(entry.key, entry.after ?? undefined, entry.version, entry.actor, entry);
      });
    } else if (this.loaded) {
      this.setStatus({ status: ProviderStatus.STALE, message: event.problem });
    }
  }

  private async reload(): Promise<void> {
    let snapshot: BackendSnapshot;
    try {
      snapshot = (await this.backend.load()) ?? (await this.seedEmptyBackend());
    } catch (error) {
      const message = (error as Error).message;
      // Loaded before: the last good flags serve on (the backend has said why).
      if (!this.loaded) this.setStatus({ status: ProviderStatus.ERROR, message });
      else if (this.state.status === ProviderStatus.STALE) this.setStatus({ status: ProviderStatus.STALE, message });
      return;
    }
    if (!this.loaded && snapshot.recorded) this.stamps = snapshot.recorded;
    const changes = this.changesIn(snapshot);
    this.doc = snapshot.document;
    if (snapshot.audit) this.auditEntries = snapshot.audit.slice(0, AUDIT_CAPACITY);
    // A backend that keeps no history of its own is told of what was found.
    if (!this.backend.keepsHistory && changes.length > 0) {
      const entries = changes.map(toAuditEntry);
      this.remember(entries);
      this.backend.recordChanges({ entries, versions: this.stamps });
    }
    const first = !this.loaded;
    this.loaded = true;
    if (this.state.status !== ProviderStatus.READY) this.setStatus({ status: ProviderStatus.READY });
    this.logger.info(
      { flags: Object.keys(this.doc.flags).length, changed: changes.length },
      first ? `flags loaded from ${this.kind}` : `flags reloaded from ${this.kind}`,
    );
    this.announce(changes);
  }

  /** Every flag whose definition differs from the one held, by the one rule; the stamps are updated. */
  private changesIn(snapshot: BackendSnapshot): FlagChange[] {
    const at = new Date().toISOString();
    const stamps: VersionTable = { ...this.stamps };
    const changes: FlagChange[] = [];
    for (const key of new Set([
      ...Object.keys(this.stamps),
      ...Object.keys(this.doc.flags),
      ...Object.keys(snapshot.document.flags),
    ])) {
      const after = snapshot.document.flags[key];
      const { changed, stamp } = decide(stamps[key], after, snapshot.versions?.[key]);
      if (stamp) stamps[key] = stamp;
      if (changed)
        changes.push({ key, version: stamp!.version, before: this.doc.flags[key], after, actor: snapshot.actor, at });
    }
    this.stamps = stamps;
    return changes;
  }

  /**
   * An empty backend is seeded: with what this instance holds if it held anything (a Redis that
   * lost its data: a kill is never undone by it), else the defaults. Then it is read again: with
   * several instances seeding at once, one seed wins.
   */
  private async seedEmptyBackend(): Promise<BackendSnapshot> {
    await this.backend.seed(
      this.loaded
        ? { document: this.doc, versions: this.stamps, audit: this.auditEntries.slice().reverse() }
        : defaultSeed(this.defaults()),
    );
    this.logger[this.loaded ? 'warn' : 'info'](
      this.loaded
        ? `${this.kind} came back empty: seeded it with this instance's last known flags`
        : `${this.kind} held no flags: seeded it with the default flags`,
    );
    const snapshot = await this.backend.load();
    if (!snapshot) throw new Error(`${this.kind} is still empty after seeding it`);
    return snapshot;
  }

  /** One flag as the backend has it now (another instance's write), by the same rule. */
  private applyOne(
    key: string,
    after: FlagDefinition | undefined,
    backendVersion: number | undefined,
    actor: Actor,
    entry?: AuditEntry,
  ): void {
    const { changed, stamp } = decide(this.stamps[key], after, backendVersion);
    if (!stamp) return;
    this.stamps = { ...this.stamps, [key]: stamp };
    if (!changed) return;
    const change: FlagChange = {
      key,
      version: stamp.version,
      before: this.doc.flags[key],
      after,
      actor,
      at: entry?.at ?? new Date().toISOString(),
    };
    const flags = { ...this.doc.flags };
    if (after) flags[key] = after;
    else delete flags[key];
    this.doc = { ...this.doc, flags };
    this.remember([entry ?? toAuditEntry(change)]);
    this.announce([change]);
  }

  private undo(change: FlagChange, previous: { doc: FlagdDocument; stamps: VersionTable }, failure: Error): never {
    this.logger.error({ err: failure }, `could not save the flags to ${this.kind}: the change is undone`);
    this.doc = previous.doc;
    this.stamps = previous.stamps;
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
    if (!this.backend.keepsHistory) this.backend.recordChanges({ entries: [entry], versions: previous.stamps });
    // Announced like any change, so the audit says exactly what browsers saw.
    this.announce([undo]);
    throw new ServiceUnavailableError(`Could not save the flags: ${failure.message}. Nothing was changed.`);
  }

  private remember(entries: AuditEntry[]): void {
    this.auditEntries = [...entries.slice().reverse(), ...this.auditEntries].slice(0, AUDIT_CAPACITY);
  }

  private setStatus(status: RepositoryStatus): void {
    this.state = status;
    for (const listener of this.statusListeners) listener(status);
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

/** The defaults as a first start records them: every flag at version 1, created by the system. */
export function defaultSeed(document: FlagdDocument): BackendSeed {
  const at = new Date().toISOString();
  const actor: Actor = { source: 'system', name: 'default flags' };
  const flags = Object.entries(document.flags);
  return {
    document,
    versions: Object.fromEntries(
      flags.map(([key, definition]) => [key, { version: 1, hash: definitionHash(definition) }]),
    ),
    audit: flags.map(([key, definition]) =>
      toAuditEntry({ key, version: 1, before: undefined, after: definition, actor, at }),
    ),
  };
}
