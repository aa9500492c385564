import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { FlagValidationError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { preparePrivateDir, PRIVATE_FILE_MODE, storeFiles } from '../store-files.js';
import { AUDIT_CAPACITY, FileAuditLog, type AuditEntry } from './audit.js';
import type {
  BackendEvent,
  BackendSeed,
  BackendSnapshot,
  FlagBackend,
  FlagWrite,
  VersionTable,
  WriteOutcome,
} from './backend.js';
import type { Actor, FlagdDocument } from './types.js';
import { readFlagDocument } from './validate.js';

export interface FileBackendOptions {
  file: string;
  logger: Logger;
  /** How long to wait for an outside edit to settle before reading it. */
  watchDebounceMs?: number;
}

export function serializeDocument(document: FlagdDocument): string {
  return JSON.stringify(document, null, 2) + '\n';
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** A flag file larger than this is refused whole: a flag document is a few KB. */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

function parseDocument(text: string): FlagdDocument {
  if (Buffer.byteLength(text) > MAX_FILE_BYTES)
    throw new FlagValidationError('', `larger than ${MAX_FILE_BYTES / 1024 / 1024} MB`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new FlagValidationError('', `not valid JSON (${(error as Error).message})`);
  }
  return readFlagDocument(raw);
}

const FILE_EDIT: Actor = { source: 'file', name: 'edit of the flag file' };

/**
 * The embedded backend: a flagd document in FLAGS_FILE, written atomically (temp file, fsync,
 * rename), and watched so that a hand edit takes effect at once. Beside it, the version table and
 * the audit (JSON lines), which the file cannot hold. A broken edit is refused (logged), and the
 * last good flags keep serving; a broken file at start-up is an error until it is fixed.
 *
 * One process writes the file, and the repository orders its writes and the reloads of outside
 * edits in one queue; its compare-and-set only checks that no edit came in meanwhile.
 */
export class FileBackend implements FlagBackend {
  readonly kind = 'file' as const;
  readonly keepsHistory = false;
  private readonly files: ReturnType<typeof storeFiles>;
  private readonly auditLog: FileAuditLog;
  /** The text of the file as we last wrote or read it: a watch event for it is our own write. */
  private lastText: string | undefined;
  /** The text of an edit refused as broken: kept aside before a write replaces it. */
  private refusedText: string | undefined;
  /** No good document read yet: the next one comes with the recorded versions and the audit. */
  private firstGood = true;
  private prepared = false;
  private broken = false;
  private listener: ((event: BackendEvent) => void) | undefined;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  /** The version table and audit lines being saved, in order. */
  private saving: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: FileBackendOptions) {
    this.files = storeFiles(options.file);
    this.auditLog = new FileAuditLog(this.files.audit, options.logger.child({ component: 'audit' }), AUDIT_CAPACITY);
  }

  async load(): Promise<BackendSnapshot | undefined> {
    const { logger } = this.options;
    if (!this.prepared) {
      await preparePrivateDir(this.files.dir, logger);
      await this.removeTempFilesOfACrash();
      await this.auditLog.load();
      this.prepared = true;
      // Only now: the folder watched may not have existed before (a first start).
      if (this.listener) this.watch();
    }
    const text = await readIfExists(this.files.flags);
    const actor = this.firstGood ? { source: 'file' as const, name: 'flag file at start-up' } : FILE_EDIT;
    if (text === undefined) {
      if (this.firstGood) return undefined;
      throw new Error(`${this.files.flags} is gone: the last good flags keep serving until it is back`);
    }
    let document: FlagdDocument;
    try {
      document = parseDocument(text);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.lastText = text;
      this.refusedText = text;
      this.broken = this.firstGood;
      logger.error(
        { file: this.files.flags, reason },
        this.firstGood
          ? 'flag file is broken: serving the safe defaults (everything killed) until it is fixed'
          : 'refused a broken edit of the flag file; the last good flags keep serving',
      );
      throw new Error(`the flag file is broken: ${reason}`, { cause: error });
    }
    if (this.broken) logger.info({ file: this.files.flags }, 'flag file fixed; serving it');
    this.broken = false;
    this.lastText = text;
    if (!this.firstGood) return { document, actor };
    this.firstGood = false;
    return { document, actor, recorded: await this.recordedVersions(), audit: this.auditLog.recent(AUDIT_CAPACITY) };
  }

  /** A first start: the flag file, its versions and its audit lines, written whole. */
  async seed(seed: BackendSeed): Promise<void> {
    const text = serializeDocument(seed.document);
    this.lastText = text;
    await writeFileAtomic(this.files.flags, text, { mode: PRIVATE_FILE_MODE });
    this.recordChanges({ entries: seed.audit, versions: seed.versions });
    await this.saving;
    await this.auditLog.flush();
    this.options.logger.info({ file: this.files.flags }, 'flag file created with the default flags');
  }

  /**
   * Starts the write one turn of the loop later, so that the push to the browsers (announced by
   * the repository as soon as this returns) goes first; the caller's promise still waits for
   * `durable`. The version table and the audit line follow once the document is durable (a crash
   * in between is harmless: the next start finds the document's hashes newer than the table).
   */
  async compareAndSet(write: FlagWrite): Promise<WriteOutcome> {
    // An edit by hand not loaded yet (its watch event still to come, or no watch at all) must
    // not be written over: the repository loads it and makes the write again on top of it.
    if (this.editedOutside()) return { outcome: 'stale' };
    const text = serializeDocument(write.document);
    const previousText = this.lastText;
    const refused = this.refusedText !== undefined && previousText === this.refusedText ? this.refusedText : undefined;
    this.refusedText = undefined;
    // Set first: the watch event of our own rename must find the text already known.
    this.lastText = text;
    const durable = new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        this.keepRefusedEdit(refused)
          .then(() => writeFileAtomic(this.files.flags, text, { mode: PRIVATE_FILE_MODE }))
          .then(resolve, (error: Error) => {
            if (this.lastText === text) this.lastText = previousText;
            reject(error);
          });
      });
    });
    durable.then(
      () => this.recordChanges({ entries: [write.entry], versions: write.versions }),
      () => undefined,
    );
    return { outcome: 'written', durable };
  }

  recordChanges(found: { entries: AuditEntry[]; versions: VersionTable }): void {
    for (const entry of found.entries) this.auditLog.append(entry).catch(() => undefined);
    const text = JSON.stringify(found.versions, null, 2) + '\n';
    this.saving = this.saving.then(() =>
      writeFileAtomic(this.files.versions, text, { mode: PRIVATE_FILE_MODE }).catch((error: unknown) =>
        this.options.logger.error({ err: error }, 'could not save flag versions'),
      ),
    );
  }

  subscribe(listener: (event: BackendEvent) => void): () => void {
    this.listener = listener;
    if (this.prepared) this.watch();
    return () => {
      this.listener = undefined;
      this.stopWatching();
    };
  }

  async close(): Promise<void> {
    this.stopWatching();
    await this.saving;
    await this.auditLog.flush();
  }

  /** A broken edit about to be written over is kept beside the file, so that no edit is ever lost. */
  private async keepRefusedEdit(text: string | undefined): Promise<void> {
    if (text === undefined) return;
    await writeFileAtomic(this.files.refused, text, { mode: PRIVATE_FILE_MODE });
    this.options.logger.warn(
      { file: this.files.refused },
      `a write replaced a broken edit of the flag file; the edit is kept in ${this.files.refused}`,
    );
  }

  /**
   * Whether the file holds something other than what was last read or written here. Read
   * synchronously: a flag document is a few KB in the page cache (microseconds), and the check
   * must happen exactly where the write is decided.
   */
  private editedOutside(): boolean {
    try {
      return readFileSync(this.files.flags, 'utf8') !== this.lastText;
    } catch {
      // Gone, or unreadable: the write puts it back, or says why it cannot.
      return false;
    }
  }

  private async recordedVersions(): Promise<VersionTable> {
    const text = await readIfExists(this.files.versions);
    try {
      return text ? (JSON.parse(text) as VersionTable) : {};
    } catch {
      this.options.logger.warn(
        { file: this.files.versions },
        'flag versions file unreadable; versions restart from the file',
      );
      return {};
    }
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

  private watch(): void {
    if (this.watcher) return;
    const base = path.basename(this.files.flags);
    try {
      // The folder, not the file: an atomic save (ours or an editor's) replaces the file's inode.
      this.watcher = watch(this.files.dir, (_event, filename) => {
        if (filename !== base) return;
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => void this.noticeEdit(), this.options.watchDebounceMs ?? 40);
      });
      this.watcher.on('error', (error) => this.options.logger.error({ err: error }, 'flag file watcher failed'));
    } catch (error) {
      this.options.logger.warn({ err: error }, 'cannot watch the flag file; outside edits need a restart');
    }
  }

  private stopWatching(): void {
    clearTimeout(this.debounce);
    this.watcher?.close();
    this.watcher = undefined;
  }

  /** An edit that is not our own write: the repository loads the file again, in its order. */
  private async noticeEdit(): Promise<void> {
    try {
      const text = await readIfExists(this.files.flags);
      if (text === undefined || text === this.lastText) return;
      this.listener?.({ type: 'reload' });
    } catch (error) {
      this.options.logger.error({ err: error }, 'could not read the flag file; the last good flags keep serving');
    }
  }
}
