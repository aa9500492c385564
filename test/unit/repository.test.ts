import { describe, expect, it } from 'vitest';
import { defaultFlagDocument, KILL_SWITCH, THEME } from '../../server/flags/catalog.js';
import type { AuditEntry } from '../../server/flags/audit.js';
import { AUDIT_CAPACITY, toAuditEntry } from '../../server/flags/audit.js';
import { ProviderStatus } from '@openfeature/server-sdk';
import { canonicalJson, decide, definitionHash, FlagRepository } from '../../server/flags/repository.js';
import type { FlagChange, FlagDefinition } from '../../server/flags/types.js';
import { createLogger } from '../../server/observability/logger.js';
import { capturingLogger } from '../helpers/app.js';
import { MemoryBackend } from '../helpers/memory-backend.js';

const logger = createLogger('silent');
const actor = { source: 'api' as const, name: 'test' };
const killed = (): FlagDefinition => ({ ...defaultFlagDocument().flags[KILL_SWITCH]!, state: 'DISABLED' });
const kill = (current: FlagDefinition): FlagDefinition => ({ ...current, state: 'DISABLED' });

async function open(options: { keepsHistory?: boolean } = {}) {
  const backend = new MemoryBackend(defaultFlagDocument(), options);
  const repository = new FlagRepository(backend, logger, defaultFlagDocument);
  await repository.start();
  const changes: FlagChange[][] = [];
  repository.onChange((batch) => changes.push(batch));
  return { backend, repository, changes };
}

describe('the one rule for what changed', () => {
  const on: FlagDefinition = { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' };
  const hash = definitionHash(on);

  it("a definition with the hash held is no change, whatever its version; the backend's version is adopted", () => {
    expect(decide({ version: 3, hash }, on, undefined)).toEqual({ changed: false, stamp: { version: 3, hash } });
    expect(
      decide({ version: 3, hash }, { defaultVariant: 'on', variants: { off: false, on: true }, state: 'ENABLED' }, 5),
    ).toEqual({ changed: false, stamp: { version: 5, hash } });
  });

  it("another hash is a change: at the backend's version when it keeps them, else one more than held", () => {
    expect(decide({ version: 3, hash }, killed(), undefined)).toEqual({
      changed: true,
      stamp: { version: 4, hash: definitionHash(killed()) },
    });
    expect(decide({ version: 3, hash }, killed(), 9)).toEqual({
      changed: true,
      stamp: { version: 9, hash: definitionHash(killed()) },
    });
    expect(decide(undefined, on, undefined)).toEqual({ changed: true, stamp: { version: 1, hash } });
  });

  it('hashes a definition by its content: members in any order and absent members are the same, array order is not', () => {
    expect(canonicalJson({ b: [2, 1], a: undefined, c: { y: 1, x: 'x' } })).toBe('{"b":[2,1],"c":{"x":"x","y":1}}');
    const rollout = (weights: [number, number]): FlagDefinition => ({
      ...on,
      targeting: {
        fractional: [
          ['on', weights[0]],
          ['off', weights[1]],
        ],
      },
    });
    expect(definitionHash(rollout([10, 90]))).not.toBe(definitionHash(rollout([90, 10])));
    expect(definitionHash({ ...on, metadata: undefined })).toBe(hash);
  });

  it('a flag gone is a change to no definition; a flag never known and not there is nothing', () => {
    expect(decide({ version: 3, hash }, undefined, undefined)).toEqual({
      changed: true,
      stamp: { version: 4, hash: null },
    });
    expect(decide({ version: 4, hash: null }, undefined, undefined)).toEqual({
      changed: false,
      stamp: { version: 4, hash: null },
    });
    expect(decide(undefined, undefined, undefined)).toEqual({ changed: false, stamp: undefined });
  });
});

describe('the flag repository over a backend in memory', () => {
  it('a write is compared and set at the version held, announced once, and audited once', async () => {
    const { backend, repository, changes } = await open();
    const record = await repository.update(KILL_SWITCH, kill, { actor });
    expect(record).toMatchObject({ version: 2, definition: { state: 'DISABLED' } });
    expect(backend.writes.map((write) => [write.key, write.expected, write.entry.version])).toEqual([
      [KILL_SWITCH, 1, 2],
    ]);
    expect(changes).toEqual([[expect.objectContaining({ key: KILL_SWITCH, version: 2, actor })]]);
    expect(repository.audit.recent(1)).toEqual([
      expect.objectContaining({ key: KILL_SWITCH, version: 2, summary: 'killed (disabled)' }),
    ]);
  });

  it("another instance's write is applied once, with its version and its own audit line; an older message is ignored", async () => {
    const { backend, repository, changes } = await open({ keepsHistory: true });
    const entry = backend.writeElsewhere(KILL_SWITCH, killed());
    await repository.idle();
    expect(repository.get(KILL_SWITCH)).toMatchObject({ version: 2, definition: { state: 'DISABLED' } });
    expect(repository.audit.recent(1)[0]!.id).toBe(entry.id);
    // The same message again (as a write of ours comes back on the channel), and an older one.
    backend['listener']!({ type: 'change', entry });
    backend['listener']!({
      type: 'change',
      entry: { ...entry, version: 1, after: defaultFlagDocument().flags[KILL_SWITCH]! },
    });
    await repository.idle();
    expect(changes).toHaveLength(1);
    expect(repository.get(KILL_SWITCH)!.definition.state).toBe('DISABLED');
  });

  it('a write that lost the race applies the winner, then is made on top of it (or is a 412 with If-Match)', async () => {
    const { backend, repository, changes } = await open({ keepsHistory: true });
    backend.writeUnheard(THEME, { ...defaultFlagDocument().flags[THEME]!, defaultVariant: 'dark' });
    await expect(
      repository.update(THEME, (current) => ({ ...current, state: 'DISABLED' }), { actor, ifMatch: [1] }),
    ).rejects.toMatchObject({ status: 412 });
    // The conflict taught the repository the winner's write: announced, at its version.
    expect(changes.flat().map((change) => [change.key, change.version, change.after?.defaultVariant])).toEqual([
      [THEME, 2, 'dark'],
    ]);
    backend.writeUnheard(THEME, { ...defaultFlagDocument().flags[THEME]!, defaultVariant: 'aurora' });
    const record = await repository.update(THEME, (current) => ({ ...current, state: 'DISABLED' }), { actor });
    expect(record).toMatchObject({ version: 4, definition: { state: 'DISABLED', defaultVariant: 'aurora' } });
  });

  it('a write that never becomes durable is undone, the undo announced and audited, and the caller gets a 503', async () => {
    const { backend, repository, changes } = await open();
    backend.failNextWrite = new Error('disk full');
    await expect(repository.update(KILL_SWITCH, kill, { actor })).rejects.toMatchObject({
      status: 503,
      message: expect.stringMatching(/disk full\. Nothing was changed/),
    });
    expect(repository.get(KILL_SWITCH)).toMatchObject({ version: 1, definition: { state: 'ENABLED' } });
    expect(changes.map((batch) => batch.map((change) => [change.version, change.after?.state]))).toEqual([
      [[2, 'DISABLED']],
      [[1, 'ENABLED']],
    ]);
    expect(repository.audit.recent(2).map((entry) => entry.actor.name)).toEqual(['undo of an unsaved write', 'test']);
    expect(backend.recorded.at(-1)!.entries.map((entry) => entry.summary)).toEqual(['restored (enabled)']);
  });

  it('an outside edit is found by the same rule, announced and given to the backend to keep (a file keeps its audit)', async () => {
    const { backend, repository, changes } = await open();
    const document = defaultFlagDocument();
    backend.editOutside({ ...document, flags: { ...document.flags, [KILL_SWITCH]: killed() } });
    await repository.idle();
    expect(changes.flat().map((change) => [change.key, change.version])).toEqual([[KILL_SWITCH, 2]]);
    expect(backend.recorded.at(-1)!.entries.map((entry) => [entry.key, entry.version])).toEqual([[KILL_SWITCH, 2]]);
    expect(backend.recorded.at(-1)!.versions[KILL_SWITCH]).toEqual({ version: 2, hash: definitionHash(killed()) });
    // The same document again: nothing.
    backend.editOutside({ ...document, flags: { ...document.flags, [KILL_SWITCH]: killed() } });
    await repository.idle();
    expect(changes).toHaveLength(1);
  });

  it('starts from the versions the backend had recorded: a flag edited since (or a crash before its versions were saved) is one newer', async () => {
    const backend = new MemoryBackend(defaultFlagDocument());
    const stale = definitionHash(killed());
    const load = backend.load.bind(backend);
    backend.load = async () => ({ ...(await load())!, recorded: { [KILL_SWITCH]: { version: 5, hash: stale } } });
    const repository = new FlagRepository(backend, logger, defaultFlagDocument);
    await repository.start();
    expect(repository.versionOf(KILL_SWITCH)).toBe(6);
    expect(repository.versionOf(THEME)).toBe(1);
  });

  it('status: an error while nothing could load (writes refused), stale while the backend is away, ready again once it loads', async () => {
    const backend = new MemoryBackend(defaultFlagDocument(), { keepsHistory: true });
    backend.loadFailure = new Error('Redis unreachable since start-up');
    const repository = new FlagRepository(backend, logger, defaultFlagDocument);
    const seen: string[] = [];
    repository.onStatus(({ status }) => seen.push(status));
    await repository.start();
    expect(repository.status()).toEqual({ status: ProviderStatus.ERROR, message: 'Redis unreachable since start-up' });
    expect(repository.list()).toEqual([]);
    await expect(repository.update(KILL_SWITCH, kill, { actor })).rejects.toMatchObject({
      status: 503,
      message: expect.stringMatching(/could not be loaded \(Redis unreachable since start-up\)/),
    });
    backend.loadFailure = undefined;
    backend.reconnected();
    await repository.idle();
    backend.unreachable('Redis unreachable');
    expect(repository.status()).toEqual({ status: ProviderStatus.STALE, message: 'Redis unreachable' });
    // Meanwhile another instance killed (its message lost with the connection): the reload finds it.
    backend.writeUnheard(KILL_SWITCH, killed());
    backend.reconnected();
    await repository.idle();
    expect(repository.get(KILL_SWITCH)).toMatchObject({ version: 2, definition: { state: 'DISABLED' } });
    expect(seen).toEqual([ProviderStatus.ERROR, ProviderStatus.READY, ProviderStatus.STALE, ProviderStatus.READY]);
  });

  it('seeds an empty backend: with the defaults at a first start, with what it holds once loaded (a kill survives a Redis that lost its data)', async () => {
    const backend = new MemoryBackend(undefined, { keepsHistory: true });
    const repository = new FlagRepository(backend, logger, defaultFlagDocument);
    await repository.start();
    expect(backend.seeds).toHaveLength(1);
    expect(backend.seeds[0]!.document).toEqual(defaultFlagDocument());
    expect(backend.seeds[0]!.audit.map((entry) => [entry.key, entry.version, entry.actor.name])).toEqual(
      Object.keys(defaultFlagDocument().flags).map((key) => [key, 1, 'default flags']),
    );
    expect(repository.audit.recent()).toHaveLength(0); // the backend keeps its own audit: it gave none back here
    await repository.update(KILL_SWITCH, kill, { actor });
    backend.wipe();
    backend.reconnected();
    await repository.idle();
    const reseeded = backend.seeds[1]!;
    expect(reseeded.document.flags[KILL_SWITCH]!.state).toBe('DISABLED');
    expect(reseeded.versions[KILL_SWITCH]).toEqual({ version: 2, hash: definitionHash(killed()) });
    expect(reseeded.audit.at(-1)).toMatchObject({ key: KILL_SWITCH, version: 2 });
    expect(repository.get(KILL_SWITCH)).toMatchObject({ version: 2, definition: { state: 'DISABLED' } });
  });
});

describe('the flag repository, its edges', () => {
  it('before it has loaded: no flags, no audit, status not ready, version 1 for any flag, and a write is a 503', async () => {
    const repository = new FlagRepository(new MemoryBackend(defaultFlagDocument()), logger, defaultFlagDocument);
    expect(repository.status()).toEqual({ status: ProviderStatus.NOT_READY });
    expect(repository.audit.recent()).toEqual([]);
    expect(repository.versionOf('no-such-flag')).toBe(1);
    await expect(repository.update(KILL_SWITCH, kill, { actor })).rejects.toMatchObject({
      status: 503,
      message: expect.stringMatching(/could not be loaded \(still loading\)/),
    });
  });

  it('an unknown flag is a 404 naming it; a stale If-Match is a 412 that says the version held', async () => {
    const { repository } = await open();
    expect(repository.versionOf('no-such-flag')).toBe(1);
    await expect(repository.update('no-such-flag', kill, { actor })).rejects.toMatchObject({
      status: 404,
      message: 'Unknown flag "no-such-flag".',
    });
    await repository.update(KILL_SWITCH, kill, { actor });
    await expect(
      repository.update(KILL_SWITCH, (current) => ({ ...current, state: 'ENABLED' }), { actor, ifMatch: [1] }),
    ).rejects.toMatchObject({
      status: 412,
      message: expect.stringMatching(
        /^Flag "show-avatars-and-reccs" is at version 2 \(ETag "2"\), which If-Match does not name/,
      ),
      details: { currentVersion: 2 },
    });
  });

  it('lists flags sorted by key, whatever order the backend has them in', async () => {
    const { backend, repository } = await open();
    const document = defaultFlagDocument();
    backend.editOutside({ ...document, flags: { zz: killed(), ...document.flags, aa: killed() } });
    await repository.idle();
    const keys = repository.list().map((record) => record.key);
    expect(keys).toEqual([...keys].sort());
    expect(keys[0]).toBe('aa');
    expect(keys.at(-1)).toBe('zz');
  });

  it('a write racing writers that always win gives up after 20 tries with a 503', async () => {
    const { backend, repository } = await open({ keepsHistory: true });
    let tries = 0;
    backend.compareAndSet = async (write) => ({
      outcome: 'conflict',
      current: {
        version: write.expected + 1 + tries++,
        definition: { ...killed(), state: 'ENABLED', defaultVariant: tries % 2 ? 'off' : 'on' },
      },
    });
    await expect(repository.update(KILL_SWITCH, kill, { actor })).rejects.toMatchObject({
      status: 503,
      message: `Flag "${KILL_SWITCH}" is being written by others too often; try again.`,
    });
    expect(tries).toBe(20);
  });

  it('a flag another instance removed: the write is a 404, the removal announced (as a reload), the other flags kept', async () => {
    const { backend, repository, changes } = await open({ keepsHistory: true });
    const { [THEME]: _removed, ...rest } = backend.document!.flags;
    backend.document = { ...backend.document!, flags: rest };
    await expect(repository.update(THEME, kill, { actor })).rejects.toMatchObject({ status: 404 });
    expect(repository.get(THEME)).toBeUndefined();
    expect(repository.list().map((record) => record.key)).not.toContain(THEME);
    expect(repository.get(KILL_SWITCH)).toBeDefined();
    expect(changes.flat()).toEqual([
      expect.objectContaining({ key: THEME, after: undefined, actor: { source: 'system', name: 'reload from file' } }),
    ]);
  });

  it('a flag written elsewhere and back (the same content at a newer version): the version is taken, nothing is announced', async () => {
    const { backend, repository, changes } = await open({ keepsHistory: true });
    const original = backend.document!.flags[THEME]!;
    backend.writeUnheard(THEME, { ...original, defaultVariant: 'dark' });
    backend.writeUnheard(THEME, original);
    await expect(repository.update(THEME, kill, { actor, ifMatch: [1] })).rejects.toMatchObject({
      status: 412,
      details: { currentVersion: 3 },
    });
    expect(changes).toEqual([]);
    expect(repository.versionOf(THEME)).toBe(3);
  });

  it("another instance's change is applied as it was made (its time), to that flag only; a flag new to this instance too", async () => {
    const { backend, repository, changes } = await open({ keepsHistory: true });
    const at = '2020-01-02T03:04:05.000Z';
    const entry: AuditEntry = {
      ...toAuditEntry({ key: KILL_SWITCH, version: 2, before: undefined, after: killed(), actor, at }),
    };
    backend['listener']!({ type: 'change', entry });
    const added = toAuditEntry({ key: 'brand-new', version: 1, before: undefined, after: killed(), actor, at });
    backend['listener']!({ type: 'change', entry: added });
    await repository.idle();
    expect(changes.flat().map((change) => [change.key, change.version, change.at])).toEqual([
      [KILL_SWITCH, 2, at],
      ['brand-new', 1, at],
    ]);
    expect(repository.get(THEME)).toEqual({ key: THEME, version: 1, definition: defaultFlagDocument().flags[THEME] });
    expect(repository.get('brand-new')).toMatchObject({ version: 1, definition: { state: 'DISABLED' } });
  });

  it('an edit that changes several flags is audited newest first, and the backend keeps its lines in the order made; a reload that finds nothing keeps nothing', async () => {
    const { backend, repository, changes } = await open();
    const document = defaultFlagDocument();
    backend.editOutside({
      ...document,
      flags: {
        ...document.flags,
        [KILL_SWITCH]: killed(),
        [THEME]: { ...document.flags[THEME]!, defaultVariant: 'dark' },
      },
    });
    await repository.idle();
    const made = changes.flat().map((change) => change.key);
    expect(made).toHaveLength(2);
    expect(backend.recorded.at(-1)!.entries.map((entry) => entry.key)).toEqual(made);
    expect(repository.audit.recent(2).map((entry) => entry.key)).toEqual([...made].reverse());
    const recorded = backend.recorded.length;
    backend.reconnected();
    await repository.idle();
    expect(backend.recorded).toHaveLength(recorded);
  });

  it('keeps at most 500 audit lines, whatever the backend holds', async () => {
    const backend = new MemoryBackend(defaultFlagDocument(), { keepsHistory: true });
    const load = backend.load.bind(backend);
    const line = toAuditEntry({
      key: KILL_SWITCH,
      version: 1,
      before: undefined,
      after: killed(),
      actor,
      at: new Date().toISOString(),
    });
    backend.load = async () => ({ ...(await load())!, audit: Array.from({ length: 600 }, () => line) });
    const repository = new FlagRepository(backend, logger, defaultFlagDocument);
    await repository.start();
    expect(repository.audit.recent(1000)).toHaveLength(500);
  });

  it('status: an outage before anything loaded stays an error; a reload that fails while stale says why; ready is told once; a listener can leave', async () => {
    const backend = new MemoryBackend(defaultFlagDocument(), { keepsHistory: true });
    backend.loadFailure = new Error('Redis unreachable since start-up');
    const repository = new FlagRepository(backend, logger, defaultFlagDocument);
    const seen: string[] = [];
    const leave = repository.onStatus(({ status }) => seen.push(status));
    await repository.start();
    backend.unreachable('Redis unreachable');
    expect(repository.status()).toMatchObject({ status: ProviderStatus.ERROR });
    backend.loadFailure = undefined;
    backend.reconnected();
    backend.reconnected(); // a second reload while ready: not told again
    await repository.idle();
    backend.unreachable('Redis unreachable');
    backend.loadFailure = new Error('Redis failed while loading the flags (LOADING)');
    backend.reconnected();
    await repository.idle();
    expect(repository.status()).toEqual({
      status: ProviderStatus.STALE,
      message: 'Redis failed while loading the flags (LOADING)',
    });
    expect(seen).toEqual([ProviderStatus.ERROR, ProviderStatus.READY, ProviderStatus.STALE, ProviderStatus.STALE]);
    leave();
    backend.loadFailure = undefined;
    backend.reconnected();
    await repository.idle();
    expect(repository.status()).toEqual({ status: ProviderStatus.READY });
    expect(seen).toHaveLength(4);
  });

  it('a ready repository whose reload fails (a broken edit) stays ready: the last good flags serve on', async () => {
    const { backend, repository } = await open();
    backend.loadFailure = new Error('broken edit');
    backend.reconnected();
    await repository.idle();
    expect(repository.status()).toEqual({ status: ProviderStatus.READY });
    expect(repository.list().length).toBeGreaterThan(0);
  });

  it('an undo over a backend that keeps its own audit (Redis) is still a 503 with the undo told, by the system', async () => {
    const { backend, repository, changes } = await open({ keepsHistory: true });
    backend.failNextWrite = new Error('connection lost');
    await expect(repository.update(KILL_SWITCH, kill, { actor })).rejects.toMatchObject({
      status: 503,
      message: 'Could not save the flags: connection lost. Nothing was changed.',
    });
    expect(changes.at(-1)).toEqual([
      expect.objectContaining({ version: 1, actor: { source: 'system', name: 'undo of an unsaved write' } }),
    ]);
  });

  it('a listener that fails is logged and does not keep the others from hearing of the change', async () => {
    const { logger: warnings, lines } = capturingLogger('warn');
    const backend = new MemoryBackend(defaultFlagDocument());
    const repository = new FlagRepository(backend, warnings, defaultFlagDocument);
    await repository.start();
    const heard: number[] = [];
    repository.onChange(() => {
      throw new Error('listener bug');
    });
    repository.onChange((batch) => heard.push(batch[0]!.version));
    await repository.update(KILL_SWITCH, kill, { actor });
    expect(heard).toEqual([2]);
    expect(lines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual(['a flag change listener failed']);
  });

  it(`keeps the newest AUDIT_CAPACITY (${AUDIT_CAPACITY}) audit lines`, async () => {
    const { repository } = await open();
    const flip = (current: FlagDefinition): FlagDefinition => ({
      ...current,
      state: current.state === 'ENABLED' ? 'DISABLED' : 'ENABLED',
    });
    for (let i = 0; i < 501; i++) await repository.update(KILL_SWITCH, flip, { actor });
    const recent = repository.audit.recent(1000);
    expect(recent).toHaveLength(500);
    expect(recent[0]!.version).toBe(502);
    expect(recent.at(-1)!.version).toBe(3);
  });
});
