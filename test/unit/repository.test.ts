import { describe, expect, it } from 'vitest';
import { defaultFlagDocument, KILL_SWITCH, THEME } from '../../server/flags/catalog.js';
import { decide, definitionHash, FlagRepository } from '../../server/flags/repository.js';
import type { FlagChange, FlagDefinition } from '../../server/flags/types.js';
import { createLogger } from '../../server/observability/logger.js';
import { MemoryBackend } from '../helpers/memory-backend.js';

const logger = createLogger('silent');
const actor = { source: 'api' as const, name: 'test' };
const killed = (): FlagDefinition => ({ ...defaultFlagDocument().flags[KILL_SWITCH]!, state: 'DISABLED' });
const kill = (current: FlagDefinition): FlagDefinition => ({ ...current, state: 'DISABLED' });

async function open(options: { keepsVersions?: boolean } = {}) {
  const backend = new MemoryBackend(defaultFlagDocument(), options);
  const repository = new FlagRepository(backend, logger);
  await repository.start();
  const changes: FlagChange[][] = [];
  repository.onChange((batch) => changes.push(batch));
  return { backend, repository, changes };
}

describe('the one rule for what changed', () => {
  const on: FlagDefinition = { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' };
  const hash = definitionHash(on);

  it('a definition with the hash held is no change, whatever its version; the backend\'s version is adopted', () => {
    expect(decide({ version: 3, hash }, on, undefined)).toEqual({ changed: false, entry: { version: 3, hash } });
    expect(decide({ version: 3, hash }, { defaultVariant: 'on', variants: { off: false, on: true }, state: 'ENABLED' }, 5)).toEqual({ changed: false, entry: { version: 5, hash } });
  });

  it('another hash is a change: at the backend\'s version when it keeps them, else one more than held', () => {
    expect(decide({ version: 3, hash }, killed(), undefined)).toEqual({ changed: true, entry: { version: 4, hash: definitionHash(killed()) } });
    expect(decide({ version: 3, hash }, killed(), 9)).toEqual({ changed: true, entry: { version: 9, hash: definitionHash(killed()) } });
    expect(decide(undefined, on, undefined)).toEqual({ changed: true, entry: { version: 1, hash } });
  });

  it('a flag gone is a change to no definition; a flag never known and not there is nothing', () => {
    expect(decide({ version: 3, hash }, undefined, undefined)).toEqual({ changed: true, entry: { version: 4, hash: null } });
    expect(decide({ version: 4, hash: null }, undefined, undefined)).toEqual({ changed: false, entry: { version: 4, hash: null } });
    expect(decide(undefined, undefined, undefined)).toEqual({ changed: false, entry: undefined });
  });
});

describe('the flag repository over a backend in memory', () => {
  it('a write is compared and set at the version held, announced once, and audited once', async () => {
    const { backend, repository, changes } = await open();
    const record = await repository.update(KILL_SWITCH, kill, { actor });
    expect(record).toMatchObject({ version: 2, definition: { state: 'DISABLED' } });
    expect(backend.writes.map((write) => [write.key, write.expected, write.entry.version])).toEqual([[KILL_SWITCH, 1, 2]]);
    expect(changes).toEqual([[expect.objectContaining({ key: KILL_SWITCH, version: 2, actor })]]);
    expect(repository.audit.recent(1)).toEqual([expect.objectContaining({ key: KILL_SWITCH, version: 2, summary: 'killed (disabled)' })]);
  });

  it('another instance\'s write is applied once, with its version and its own audit line; an older message is ignored', async () => {
    const { backend, repository, changes } = await open({ keepsVersions: true });
    const entry = backend.writeElsewhere(KILL_SWITCH, killed());
    await repository.idle();
    expect(repository.get(KILL_SWITCH)).toMatchObject({ version: 2, definition: { state: 'DISABLED' } });
    expect(repository.audit.recent(1)[0]!.id).toBe(entry.id);
    // The same message again (as a write of ours comes back on the channel), and an older one.
    backend['subscriber']!.event({ type: 'change', entry });
    backend['subscriber']!.event({ type: 'change', entry: { ...entry, version: 1, after: defaultFlagDocument().flags[KILL_SWITCH]! } });
    await repository.idle();
    expect(changes).toHaveLength(1);
    expect(repository.get(KILL_SWITCH)!.definition.state).toBe('DISABLED');
  });

  it('a write that lost the race applies the winner, then is made on top of it (or is a 412 with If-Match)', async () => {
    const { backend, repository, changes } = await open({ keepsVersions: true });
    backend.writeUnheard(THEME, { ...defaultFlagDocument().flags[THEME]!, defaultVariant: 'dark' });
    await expect(repository.update(THEME, (current) => ({ ...current, state: 'DISABLED' }), { actor, ifMatch: 1 })).rejects.toMatchObject({ status: 412 });
    // The conflict taught the repository the winner's write: announced, at its version.
    expect(changes.flat().map((change) => [change.key, change.version, change.after?.defaultVariant])).toEqual([[THEME, 2, 'dark']]);
    backend.writeUnheard(THEME, { ...defaultFlagDocument().flags[THEME]!, defaultVariant: 'aurora' });
    const record = await repository.update(THEME, (current) => ({ ...current, state: 'DISABLED' }), { actor });
    expect(record).toMatchObject({ version: 4, definition: { state: 'DISABLED', defaultVariant: 'aurora' } });
  });

  it('a write that never becomes durable is undone, the undo announced and audited, and the caller gets a 503', async () => {
    const { backend, repository, changes } = await open();
    backend.failNextWrite = new Error('disk full');
    await expect(repository.update(KILL_SWITCH, kill, { actor })).rejects.toMatchObject({ status: 503, message: /disk full\. Nothing was changed/ });
    expect(repository.get(KILL_SWITCH)).toMatchObject({ version: 1, definition: { state: 'ENABLED' } });
    expect(changes.map((batch) => batch.map((change) => [change.version, change.after?.state]))).toEqual([[[2, 'DISABLED']], [[1, 'ENABLED']]]);
    expect(repository.audit.recent(2).map((entry) => entry.actor.name)).toEqual(['undo of an unsaved write', 'test']);
    expect(backend.kept.at(-1)!.entries.map((entry) => entry.summary)).toEqual(['restored (enabled)']);
  });

  it('an outside edit is found by the same rule, announced and given to the backend to keep (a file keeps its audit)', async () => {
    const { backend, repository, changes } = await open();
    const document = defaultFlagDocument();
    backend.editOutside({ ...document, flags: { ...document.flags, [KILL_SWITCH]: killed() } });
    await repository.idle();
    expect(changes.flat().map((change) => [change.key, change.version])).toEqual([[KILL_SWITCH, 2]]);
    expect(backend.kept.at(-1)!.entries.map((entry) => [entry.key, entry.version])).toEqual([[KILL_SWITCH, 2]]);
    expect(backend.kept.at(-1)!.versions[KILL_SWITCH]).toEqual({ version: 2, hash: definitionHash(killed()) });
    // The same document again: nothing.
    backend.editOutside({ ...document, flags: { ...document.flags, [KILL_SWITCH]: killed() } });
    await repository.idle();
    expect(changes).toHaveLength(1);
  });

  it('starts from the versions the backend remembered: a flag edited since (or a crash before its versions were saved) is one newer', async () => {
    const backend = new MemoryBackend(defaultFlagDocument());
    const stale = definitionHash(killed());
    const load = backend.load.bind(backend);
    backend.load = async () => ({ ...(await load()), remembered: { [KILL_SWITCH]: { version: 5, hash: stale } } });
    const repository = new FlagRepository(backend, logger);
    await repository.start();
    expect(repository.versionOf(KILL_SWITCH)).toBe(6);
    expect(repository.versionOf(THEME)).toBe(1);
  });

  it('health: an error while nothing could load (writes refused), stale while the backend is away, ready again once it loads', async () => {
    const backend = new MemoryBackend(defaultFlagDocument(), { keepsVersions: true });
    backend.loadFailure = new Error('Redis unreachable since start-up');
    const repository = new FlagRepository(backend, logger);
    const seen: string[] = [];
    repository.onHealth((health) => seen.push(health.state));
    await repository.start();
    expect(repository.health()).toEqual({ state: 'error', problem: 'Redis unreachable since start-up' });
    expect(repository.list()).toEqual([]);
    await expect(repository.update(KILL_SWITCH, kill, { actor })).rejects.toMatchObject({ status: 503, message: /could not be loaded \(Redis unreachable since start-up\)/ });
    backend.loadFailure = undefined;
    backend.reconnected();
    await repository.idle();
    backend.unreachable('Redis unreachable');
    expect(repository.health()).toEqual({ state: 'stale', problem: 'Redis unreachable' });
    // Meanwhile another instance killed (its message lost with the connection): the reload finds it.
    backend.writeUnheard(KILL_SWITCH, killed());
    backend.reconnected();
    await repository.idle();
    expect(repository.get(KILL_SWITCH)).toMatchObject({ version: 2, definition: { state: 'DISABLED' } });
    expect(seen).toEqual(['error', 'ready', 'stale', 'ready']);
  });

  it('gives what it holds to a backend that lost its data (to re-seed it), once loaded', async () => {
    const { backend, repository } = await open({ keepsVersions: true });
    await repository.update(KILL_SWITCH, kill, { actor });
    const held = backend.held()!;
    expect(held.document.flags[KILL_SWITCH]!.state).toBe('DISABLED');
    expect(held.versions[KILL_SWITCH]).toBe(2);
    expect(held.audit[0]).toMatchObject({ key: KILL_SWITCH, version: 2 });
  });
});
