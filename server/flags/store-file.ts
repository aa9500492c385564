import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import writeFileAtomic from 'write-file-atomic';
import { SerialQueue } from '../concurrency/serial-queue.js';
import { FlagValidationError, NotFoundError, PreconditionFailedError, ServiceUnavailableError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { AuditLog } from './audit.js';
import { defaultFlagDocument } from './catalog.js';
import {
  flagRecord,
  flagRecords,
  reconcile,
  storeFiles,
  type ChangeListener,
  type FlagStore,
  type FlagUpdater,
  type UpdateOptions,
  type VersionTable,
} from './store.js';
import type { Actor, FlagChange, FlagdDocument, FlagRecord } from './types.js';
import { validateFlagDocument } from './validate.js';

export interface FileFlagStoreOptions {
  file: string;
  logger: Logger;
  audit: AuditLog;
  defaults?: () => FlagdDocument;
  /** How long to wait for an outside edit to settle before reading it. */
  watchDebounceMs?: number;
}

const FILE_EDIT: Actor = { source: 'file', name: 'edit of the flag file' };

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

export function serializeDocument(document: FlagdDocument): string {
  return JSON.stringify(document, null, 2) + '\n';
}

function parseDocument(text: string): FlagdDocument {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new FlagValidationError('', `not valid JSON (${(error as Error).message})`);
  }
  return validateFlagDocument(raw);
}

/**
 * The embedded flag store: a flagd document in FLAGS_FILE, written atomically (temp file, fsync,
 * rename), and watched so that a hand edit takes effect at once. A broken edit is refused with a
 * logged error while the last good flags keep serving. A broken file at start-up leaves the
 * store unhealthy with no flags, so every flag evaluates to its safe code default (the kill
 * switch killed) and /readyz answers 503 until the file is fixed.
 */
export class FileFlagStore implements FlagStore {
  readonly kind = 'file' as const;
  private doc: FlagdDocument = { flags: {} };
  private versions: VersionTable = {};
  /** The text of the file as we last wrote or read it: a watch event for it is our own write. */
  private lastText: string | undefined;
  private problem: string | undefined;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private readonly queue = new SerialQueue();
  private readonly listeners = new Set<ChangeListener>();
  private readonly files: ReturnType<typeof storeFiles>;

  constructor(private readonly options: FileFlagStoreOptions) {
    this.files = storeFiles(options.file);
  }

  async start(): Promise<void> {
    await mkdir(this.files.dir, { recursive: true });
    await this.removeTempFilesOfACrash();
    const versionsText = await readIfExists(this.files.versions);
    try {
      this.versions = versionsText ? (JSON.parse(versionsText) as VersionTable) : {};
    } catch {
      this.options.logger.warn({ file: this.files.versions }, 'flag versions file unreadable; versions restart from the file');
      this.versions = {};
    }
    await this.queue.run(async () => {
      const text = await readIfExists(this.files.flags);
      if (text === undefined) {
        const defaults = (this.options.defaults ?? defaultFlagDocument)();
        this.options.logger.info({ file: this.files.flags }, 'flag file missing; created it with the default flags');
        await this.commit(serializeDocument(defaults), defaults, { source: 'system', name: 'default flags' });
        return;
      }
      await this.loadText(text, { source: 'file', name: 'flag file at start-up' });
    });
    this.watch();
  }

  status() {
    return this.problem ? { healthy: false, problem: this.problem } : { healthy: true };
  }

  document(): FlagdDocument {
    return this.doc;
  }

  list(): FlagRecord[] {
    return flagRecords(this.doc, (key) => this.versions[key]?.version);
  }

  get(key: string): FlagRecord | undefined {
    return flagRecord(this.doc, key, this.versions[key]?.version);
  }

  update(key: string, updater: FlagUpdater, options: UpdateOptions): Promise<FlagRecord> {
    return this.queue.run(async () => {
      if (this.problem) {
        throw new ServiceUnavailableError(`The flag file is broken (${this.problem}); fix ${this.files.flags} before writing.`);
      }
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
      const document: FlagdDocument = { ...this.doc, flags: { ...this.doc.flags, [key]: next } };
      await this.commit(serializeDocument(document), document, options.actor);
      return this.get(key)!;
    });
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    clearTimeout(this.debounce);
    this.watcher?.close();
    this.watcher = undefined;
    await this.queue.run(async () => undefined);
  }

  /**
   * A crash (SIGKILL, power loss) in the middle of an atomic write leaves its temp file
   * (`flags.json.<digits>`) beside the real one, which is whole: the old or the new document.
   */
  private async removeTempFilesOfACrash(): Promise<void> {
    const stems = [path.basename(this.files.flags), path.basename(this.files.versions)];
    for (const name of await readdir(this.files.dir)) {
      if (stems.some((stem) => name.startsWith(`${stem}.`) && /^\d+$/.test(name.slice(stem.length + 1)))) {
        await rm(path.join(this.files.dir, name), { force: true });
        this.options.logger.info({ file: name }, 'removed the temp file of an interrupted write');
      }
    }
  }

  /** Parses and applies a document read from the file; on a bad one, keeps the last good flags. */
  private async loadText(text: string, actor: Actor): Promise<void> {
    let document: FlagdDocument;
    try {
      document = parseDocument(text);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      const firstLoad = this.lastText === undefined;
      if (firstLoad) this.problem = reason;
      this.options.logger.error(
        { file: this.files.flags, reason },
        firstLoad
          ? 'flag file is broken: serving the safe defaults (everything killed) until it is fixed'
          : 'refused a broken edit of the flag file; the last good flags keep serving',
      );
      this.lastText = text;
      return;
    }
    if (this.problem) this.options.logger.info({ file: this.files.flags }, 'flag file fixed; serving it');
    this.problem = undefined;
    await this.apply(text, document, actor);
  }

  /**
   * Applies the document and writes it atomically, concurrently: browsers hear of a flip while
   * the disk is still syncing (the write is ~2 ms of a flip's path on this machine), and the
   * caller's promise resolves only once the new document is durable. If the write fails, the
   * change is undone in memory (and the undo announced) and the caller gets a 503: nothing is
   * ever acknowledged that a restart would lose.
   */
  private async commit(text: string, document: FlagdDocument, actor: Actor): Promise<void> {
    const previous = { text: this.lastText, doc: this.doc, versions: this.versions };
    // Set first: the watch event of our own rename must find the text already known.
    this.lastText = text;
    const written = writeFileAtomic(this.files.flags, text, { mode: 0o644 }).then(
      () => undefined,
      (error: unknown) => error as Error,
    );
    await this.apply(text, document, actor, written);
    const failure = await written;
    if (failure) {
      this.lastText = previous.text;
      this.options.logger.error({ err: failure }, 'could not save the flag file: the change is undone');
      const { changes } = reconcile(this.doc, previous.doc, this.versions, { source: 'system', name: 'undo of an unsaved write' });
      this.doc = previous.doc;
      this.versions = previous.versions;
      this.announce(changes.map((change) => ({ ...change, version: previous.versions[change.key]?.version ?? change.version })));
      throw new ServiceUnavailableError(`Could not save the flag file: ${failure.message}. Nothing was changed.`);
    }
  }

  /** Makes a document current and announces its changes; persists the versions once `durable` settles. */
  private async apply(text: string, document: FlagdDocument, actor: Actor, durable: Promise<Error | undefined> = Promise.resolve(undefined)): Promise<void> {
    const { changes, versions } = reconcile(this.doc, document, this.versions, actor);
    this.lastText = text;
    this.doc = document;
    this.versions = versions;
    if (changes.length === 0) return;
    // Announced before the versions are saved: whoever reads the new flags has been told. A crash
    // in between is harmless, as the next start re-derives the same versions from the hashes.
    this.announce(changes);
    if (await durable) return;
    try {
      await writeFileAtomic(this.files.versions, JSON.stringify(versions, null, 2) + '\n', { mode: 0o644 });
    } catch (error) {
      this.options.logger.error({ err: error }, 'could not save flag versions');
    }
  }

  /**
   * Audits and tells the listeners. An undo of a write that failed to save is announced (and
   * audited) like any change, so the audit says exactly what browsers saw.
   */
  private announce(changes: FlagChange[]): void {
    for (const change of changes) this.options.audit.append(change).catch(() => undefined);
    for (const listener of this.listeners) {
      try {
        listener(changes);
      } catch (error) {
        this.options.logger.error({ err: error }, 'a flag change listener failed');
      }
    }
  }

  private watch(): void {
    const base = path.basename(this.files.flags);
    try {
      // The folder, not the file: an atomic save (ours or an editor's) replaces the file's inode.
      this.watcher = watch(this.files.dir, (_event, filename) => {
        if (filename !== base) return;
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => void this.reloadFromDisk(), this.options.watchDebounceMs ?? 40);
      });
      this.watcher.on('error', (error) => this.options.logger.error({ err: error }, 'flag file watcher failed'));
    } catch (error) {
      this.options.logger.warn({ err: error }, 'cannot watch the flag file; outside edits need a restart');
    }
  }

  private reloadFromDisk(): Promise<void> {
    return this.queue
      .run(async () => {
        const text = await readIfExists(this.files.flags);
        if (text === undefined || text === this.lastText) return;
        await this.loadText(text, FILE_EDIT);
      })
      .catch((error: unknown) => this.options.logger.error({ err: error }, 'could not read the flag file; the last good flags keep serving'));
  }
}
