import { createHash } from 'node:crypto';
import path from 'node:path';
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
 * Where flag definitions live (a file, or Redis): a flagd document plus a version per flag.
 * Writes are atomic and versioned; every applied change is announced once to the listeners,
 * whether it came through the API or from an outside edit.
 */
export interface FlagStore {
  readonly kind: 'file' | 'redis';
  start(): Promise<void>;
  /** Healthy once a good document has loaded; otherwise why not (the safe defaults serve meanwhile). */
  status(): { healthy: boolean; problem?: string };
  document(): FlagdDocument;
  list(): FlagRecord[];
  get(key: string): FlagRecord | undefined;
  update(key: string, updater: FlagUpdater, options: UpdateOptions): Promise<FlagRecord>;
  onChange(listener: ChangeListener): () => void;
  close(): Promise<void>;
}

/** One flag of a document as the API shows it (version 1 when none is recorded yet). */
export function flagRecord(doc: FlagdDocument, key: string, version: number | undefined): FlagRecord | undefined {
  if (!Object.hasOwn(doc.flags, key)) return undefined;
  return { key, version: version ?? 1, definition: doc.flags[key]! };
}

/** Every flag of a document, sorted by key. */
export function flagRecords(doc: FlagdDocument, versionOf: (key: string) => number | undefined): FlagRecord[] {
  return Object.keys(doc.flags)
    .sort()
    .map((key) => flagRecord(doc, key, versionOf(key))!);
}

/** Where the files that belong to a file store live: all beside FLAGS_FILE. */
export function storeFiles(flagsFile: string) {
  const dir = path.dirname(flagsFile);
  const stem = path.basename(flagsFile).replace(/\.json$/i, '');
  return {
    dir,
    flags: flagsFile,
    versions: path.join(dir, `${stem}.versions.json`),
    audit: path.join(dir, `${stem}.audit.jsonl`),
    adminToken: path.join(dir, 'admin-token'),
  };
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
  return createHash('sha256').update(canonicalJson(definition)).digest('base64url');
}

/** A flag's version and the hash of the definition it belongs to; `hash: null` once removed. */
export type VersionTable = Record<string, { version: number; hash: string | null }>;

/**
 * Compares a new document with the version table and returns what changed, with the new
 * versions. One rule serves outside edits, edits made while the server was stopped, and a crash
 * between writing the document and writing its versions: a definition whose hash is not the
 * recorded one is a new version.
 */
export function reconcile(
  previous: FlagdDocument,
  next: FlagdDocument,
  versions: VersionTable,
  actor: Actor,
  at = new Date().toISOString(),
): { changes: FlagChange[]; versions: VersionTable } {
  const table: VersionTable = { ...versions };
  const changes: FlagChange[] = [];
  for (const [key, definition] of Object.entries(next.flags)) {
    const hash = definitionHash(definition);
    const known = table[key];
    if (known?.hash === hash) continue;
    const version = (known?.version ?? 0) + 1;
    table[key] = { version, hash };
    changes.push({ key, version, before: previous.flags[key], after: definition, actor, at });
  }
  for (const [key, known] of Object.entries(table)) {
    if (known.hash !== null && !Object.hasOwn(next.flags, key)) {
      table[key] = { version: known.version + 1, hash: null };
      changes.push({ key, version: known.version + 1, before: previous.flags[key], after: undefined, actor, at });
    }
  }
  return { changes, versions: table };
}
