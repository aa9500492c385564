import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileAuditLog, summarizeChange, toAuditEntry } from '../../server/flags/audit.js';
import type { FlagChange } from '../../server/flags/types.js';
import { createLogger } from '../../server/observability/logger.js';

const logger = createLogger('silent');
const on = { state: 'ENABLED' as const, variants: { on: true, off: false }, defaultVariant: 'on' };
const change = (version: number): FlagChange => ({
  key: 'k',
  version,
  before: on,
  after: { ...on, state: version % 2 ? 'DISABLED' : 'ENABLED' },
  actor: { source: 'api', name: `writer ${version}`, address: '127.0.0.1' },
  at: new Date(1_700_000_000_000 + version).toISOString(),
});

describe('FileAuditLog', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'audit-'));
    file = path.join(dir, 'audit.jsonl');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('is bounded: the newest entries stay, in memory and on disk, across restarts', async () => {
    const audit = new FileAuditLog(file, logger, 5);
    await audit.load();
    for (let v = 1; v <= 23; v++) await audit.append(toAuditEntry(change(v)));
    await audit.flush();
    expect(audit.recent(100).map((e) => e.version)).toEqual([23, 22, 21, 20, 19]);
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    expect(lines.length).toBeLessThanOrEqual(10);

    const reopened = new FileAuditLog(file, logger, 5);
    await reopened.load();
    expect(reopened.recent(100).map((e) => e.version)).toEqual([23, 22, 21, 20, 19]);
    expect(reopened.recent(1)[0]).toMatchObject({
      actor: { name: 'writer 23', address: '127.0.0.1' },
      before: on,
      summary: 'killed (disabled)',
    });
  });

  it('skips a torn last line (a crash in the middle of an append)', async () => {
    const audit = new FileAuditLog(file, logger, 50);
    await audit.load();
    await audit.append(toAuditEntry(change(1)));
    await audit.flush();
    await appendFile(file, '{"id":"torn","at":"2026-');
    const reopened = new FileAuditLog(file, logger, 50);
    await reopened.load();
    expect(reopened.recent(10).map((e) => e.version)).toEqual([1]);
  });

  it('sums a change up in words', () => {
    expect(summarizeChange(undefined, on)).toBe('created');
    expect(summarizeChange(on, undefined)).toBe('removed');
    expect(summarizeChange({ ...on, state: 'DISABLED' }, on)).toBe('restored (enabled)');
    expect(summarizeChange(on, { ...on, defaultVariant: 'off', targeting: { if: [true, 'on', null] } })).toBe(
      'default on → off, targeting changed',
    );
  });
});
