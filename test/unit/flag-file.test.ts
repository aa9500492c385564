import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProviderStatus } from '@openfeature/server-sdk';
import { defaultFlagDocument, KILL_SWITCH } from '../../server/flags/catalog.js';
import { FileBackend } from '../../server/flags/backend-file.js';
import { FlagRepository } from '../../server/flags/repository.js';
import type { FlagChange } from '../../server/flags/types.js';
import { createLogger } from '../../server/observability/logger.js';
import { capturingLogger, waitFor } from '../helpers/app.js';

const logger = createLogger('silent');
const admin = { source: 'admin' as const, name: 'tester' };
const disable = () => ({ state: 'DISABLED' as const, variants: { on: true, off: false }, defaultVariant: 'on' });

describe('the flag repository over the file backend', () => {
  let dir: string;
  let file: string;
  const stores: FlagRepository[] = [];

  async function open(storeLogger = logger) {
    const store = new FlagRepository(
      new FileBackend({ file, logger: storeLogger, watchDebounceMs: 10 }),
      storeLogger,
      defaultFlagDocument,
    );
    await store.start();
    stores.push(store);
    const changes: FlagChange[][] = [];
    store.onChange((c) => changes.push(c));
    return { store, audit: store.audit, changes };
  }

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'store-'));
    file = path.join(dir, 'flags.json');
  });
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the file with the default flags (flagd format) when missing', async () => {
    const { store } = await open();
    const onDisk = JSON.parse(await readFile(file, 'utf8'));
    expect(onDisk.flags[KILL_SWITCH]).toEqual({
      state: 'ENABLED',
      variants: { on: true, off: false },
      defaultVariant: 'on',
    });
    expect(onDisk.flags[KILL_SWITCH].version).toBeUndefined();
    expect(store.get(KILL_SWITCH)).toMatchObject({ key: KILL_SWITCH, version: 1 });
    expect(store.status()).toEqual({ status: ProviderStatus.READY });
  });

  it('writes atomically, versions each write, audits it, and announces it once', async () => {
    const { store, audit, changes } = await open();
    const record = await store.update(KILL_SWITCH, disable, { actor: admin });
    expect(record.version).toBe(2);
    expect(JSON.parse(await readFile(file, 'utf8')).flags[KILL_SWITCH].state).toBe('DISABLED');
    expect(changes).toHaveLength(1);
    expect(changes[0]![0]).toMatchObject({ key: KILL_SWITCH, version: 2, actor: admin });
    expect(audit.recent(1)[0]).toMatchObject({
      key: KILL_SWITCH,
      version: 2,
      summary: 'killed (disabled)',
      actor: admin,
    });
  });

  it('treats a write that changes nothing as no write', async () => {
    const { store, changes } = await open();
    await store.update(KILL_SWITCH, disable, { actor: admin });
    const again = await store.update(KILL_SWITCH, disable, { actor: admin });
    expect(again.version).toBe(2);
    expect(changes).toHaveLength(1);
  });

  it('refuses a stale If-Match and an unknown key', async () => {
    const { store } = await open();
    await expect(store.update(KILL_SWITCH, disable, { actor: admin, ifMatch: [7] })).rejects.toMatchObject({
      status: 412,
    });
    await expect(store.update('nope', disable, { actor: admin })).rejects.toMatchObject({ status: 404 });
  });

  it('keeps a kill, its version and its audit across a restart', async () => {
    const first = await open();
    await first.store.update(KILL_SWITCH, disable, { actor: admin });
    await first.store.close(); // the audit's lines flushed too
    const second = await open();
    expect(second.store.get(KILL_SWITCH)).toMatchObject({ version: 2, definition: { state: 'DISABLED' } });
    expect(second.audit.recent(2).map((e) => [e.key, e.summary])).toEqual([
      [KILL_SWITCH, 'killed (disabled)'],
      ['log-level', 'created'],
    ]);
  });

  it('picks up an outside edit of the file at once, as a new version', async () => {
    const { store, changes } = await open();
    const doc = JSON.parse(await readFile(file, 'utf8'));
    doc.flags[KILL_SWITCH].state = 'DISABLED';
    await writeFile(file, JSON.stringify(doc));
    await waitFor(() => store.get(KILL_SWITCH)?.definition.state === 'DISABLED', 3000, 'the edit');
    expect(store.get(KILL_SWITCH)!.version).toBe(2);
    expect(changes.flat()[0]).toMatchObject({ key: KILL_SWITCH, actor: { source: 'file' } });
  });

  it('refuses a broken edit and keeps serving the last good flags', async () => {
    // The store says when it refused an edit: the signal that the watcher read it.
    const { logger: storeLogger, lines } = capturingLogger('warn');
    const refusals = () => lines.filter((line) => line.includes('refused a broken edit')).length;
    const { store, changes } = await open(storeLogger);
    await writeFile(file, '{"flags": {"show-avatars-and-reccs": {"state": "ENABLED", "variants": {}');
    await waitFor(() => refusals() === 1, 3000, 'the truncated edit to be refused');
    // Wrong as a whole (no "flags" object). One flag that cannot be served is not this: see test/integration/flag-file.test.ts.
    await writeFile(
      file,
      JSON.stringify({
        flags: [{ [KILL_SWITCH]: { state: 'DISABLED', variants: { on: true }, defaultVariant: 'on' } }],
      }),
    );
    await waitFor(() => refusals() === 2, 3000, 'the invalid edit to be refused');
    expect(store.get(KILL_SWITCH)).toMatchObject({ version: 1, definition: { state: 'ENABLED' } });
    expect(store.status()).toEqual({ status: ProviderStatus.READY });
    expect(changes).toHaveLength(0);
  });

  it('starts unhealthy with no flags (safe defaults) on a broken file, and recovers when it is fixed', async () => {
    await writeFile(file, 'this is not json');
    const { store, changes } = await open();
    expect(store.status()).toMatchObject({
      status: ProviderStatus.ERROR,
      message: expect.stringContaining('not valid JSON'),
    });
    expect(store.list()).toEqual([]);
    await expect(store.update(KILL_SWITCH, disable, { actor: admin })).rejects.toMatchObject({ status: 503 });
    await writeFile(file, JSON.stringify({ flags: { [KILL_SWITCH]: disable() } }));
    await waitFor(() => store.status().status === ProviderStatus.READY, 3000, 'recovery');
    expect(store.get(KILL_SWITCH)!.definition.state).toBe('DISABLED');
    expect(changes.flat().map((c) => c.key)).toEqual([KILL_SWITCH]);
  });

  it('gives a new version to a flag edited while the server was stopped', async () => {
    const first = await open();
    await first.store.close();
    const doc = JSON.parse(await readFile(file, 'utf8'));
    doc.flags[KILL_SWITCH].defaultVariant = 'off';
    await writeFile(file, JSON.stringify(doc));
    const second = await open();
    expect(second.store.get(KILL_SWITCH)).toMatchObject({ version: 2, definition: { defaultVariant: 'off' } });
  });

  it('pushes a flip before the disk has synced, but undoes it (and says so) if the write fails', async () => {
    const { store, changes } = await open();
    const { mkdir, rm: remove } = await import('node:fs/promises');
    // Root ignores permissions: a directory where the file goes makes the rename fail.
    await remove(file);
    await mkdir(file);
    await expect(store.update(KILL_SWITCH, disable, { actor: admin })).rejects.toMatchObject({
      status: 503,
      message: expect.stringMatching(/Nothing was changed/),
    });
    expect(store.get(KILL_SWITCH)).toMatchObject({ version: 1, definition: { state: 'ENABLED' } });
    // Listeners heard the flip, then its undo: they end where the store is.
    expect(changes.map((c) => c.map((x) => x.after?.state))).toEqual([['DISABLED'], ['ENABLED']]);
  });

  it('serializes concurrent writes: none is lost', async () => {
    const { store } = await open();
    const writes = Array.from({ length: 20 }, (_, i) =>
      store.update(KILL_SWITCH, (current) => ({ ...current, variants: { ...current.variants, [`v${i}`]: true } }), {
        actor: admin,
      }),
    );
    await Promise.all(writes);
    const record = store.get(KILL_SWITCH)!;
    expect(record.version).toBe(21);
    expect(Object.keys(record.definition.variants)).toHaveLength(22);
  });
});
