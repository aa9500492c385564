import { randomUUID } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import type { Logger } from '../observability/logger.js';
import type { Actor, FlagChange, FlagDefinition } from './types.js';

/** One line of the audit: who changed which flag, when, from where, and from what to what. */
export interface AuditEntry {
  id: string;
  at: string;
  key: string;
  version: number;
  summary: string;
  actor: Actor;
  before: FlagDefinition | null;
  after: FlagDefinition | null;
}

/** How many audit lines are kept, in memory and by each backend. */
export const AUDIT_CAPACITY = 500;

/** What the API and the admin page need of the audit: to read it. */
export interface AuditReader {
  /** The newest entries first. */
  recent(limit?: number): AuditEntry[];
}

/** A short human sentence for a change: "killed", "restored", "targeting changed", ... */
export function summarizeChange(before: FlagDefinition | undefined, after: FlagDefinition | undefined): string {
  if (!before) return 'created';
  if (!after) return 'removed';
  if (before.state !== after.state) return after.state === 'DISABLED' ? 'killed (disabled)' : 'restored (enabled)';
  const parts: string[] = [];
  if (before.defaultVariant !== after.defaultVariant) {
    parts.push(`default ${before.defaultVariant ?? 'none'} → ${after.defaultVariant ?? 'none'}`);
  }
  if (JSON.stringify(before.targeting ?? null) !== JSON.stringify(after.targeting ?? null)) {
    parts.push(after.targeting ? 'targeting changed' : 'targeting removed');
  }
  if (JSON.stringify(before.variants) !== JSON.stringify(after.variants)) parts.push('variants changed');
  return parts.join(', ') || 'rewritten';
}

export function toAuditEntry(change: FlagChange): AuditEntry {
  return {
    id: randomUUID(),
    at: change.at,
    key: change.key,
    version: change.version,
    summary: summarizeChange(change.before, change.after),
    actor: change.actor,
    before: change.before ?? null,
    after: change.after ?? null,
  };
}

/**
 * The audit as JSON lines in a file beside the flag file (Redis keeps its own, in its Lua script). Appends are cheap; once the file
 * holds twice its bound, it is rewritten atomically with the newest `capacity` entries, so it
 * stays bounded. A torn last line (a crash mid-append) is skipped on load.
 */
export class FileAuditLog implements AuditReader {
  private entries: AuditEntry[] = [];
  private linesInFile = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly logger: Logger,
    private readonly capacity = AUDIT_CAPACITY,
  ) {}

  async load(): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    let text = '';
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const lines = text.split('\n').filter(Boolean);
    this.linesInFile = lines.length;
    const parsed: AuditEntry[] = [];
    for (const line of lines) {
      try {
        parsed.push(JSON.parse(line) as AuditEntry);
      } catch {
        this.logger.warn({ file: this.file }, 'skipped a torn line in the audit log');
      }
    }
    this.entries = parsed.slice(-this.capacity);
  }

  append(entry: AuditEntry): Promise<AuditEntry> {
    this.entries.push(entry);
    if (this.entries.length > this.capacity) this.entries.splice(0, this.entries.length - this.capacity);
    // Serialized so that lines never interleave and a compaction never races an append.
    const write = this.queue.then(async () => {
      if (this.linesInFile + 1 > this.capacity * 2) {
        await writeFileAtomic(this.file, this.entries.map((e) => JSON.stringify(e)).join('\n') + '\n', { mode: 0o600 });
        this.linesInFile = this.entries.length;
      } else {
        await appendFile(this.file, JSON.stringify(entry) + '\n', { mode: 0o600 });
        this.linesInFile += 1;
      }
    });
    this.queue = write.catch((error: unknown) => this.logger.error({ err: error }, 'could not write the audit log'));
    return write.then(() => entry);
  }

  /** Resolves once every append so far is on disk. */
  flush(): Promise<void> {
    return this.queue.then(() => undefined);
  }

  recent(limit = 50): AuditEntry[] {
    return this.entries.slice(-limit).reverse();
  }
}
