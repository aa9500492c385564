import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ProviderStatus } from '@openfeature/server-sdk';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveAdminToken } from '../../server/access/admin-token.js';
import { createFileTokenStore } from '../../server/access/token-store.js';
import { digestOf, newToken, TOKEN_IN_TEXT } from '../../server/access/tokens.js';
import { defaultFlagDocument, KILL_SWITCH, THEME } from '../../server/flags/catalog.js';
import type { FlagdDocument } from '../../server/flags/types.js';
import { createLogger } from '../../server/observability/logger.js';
import { capturingLogger, nextEvent, startTestApp, waitFor, type TestApp } from '../helpers/app.js';

/** The flag file as a person edits it: read, change, write back (not atomically, as an editor may). */
async function editByHand(file: string, change: (document: FlagdDocument) => void): Promise<void> {
  const document = JSON.parse(await readFile(file, 'utf8')) as FlagdDocument;
  change(document);
  await writeFile(file, JSON.stringify(document, null, 2));
}

const kill = (document: FlagdDocument) => {
  document.flags[KILL_SWITCH]!.state = 'DISABLED';
};
const readFlags = async (file: string) => (JSON.parse(await readFile(file, 'utf8')) as FlagdDocument).flags;
const modeOf = async (file: string) => (await stat(file)).mode & 0o777;

describe('the flag file, edited by hand', () => {
  const apps: TestApp[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.stop();
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  /** An app whose flag folder does not exist yet, as on a fresh clone (`data/` is made at first start). */
  async function firstStart(level: 'info' | 'warn' = 'warn') {
    const dir = await mkdtemp(path.join(tmpdir(), 'killswitch-first-'));
    dirs.push(dir);
    const file = path.join(dir, 'data', 'flags.json');
    const { logger, lines } = capturingLogger(level);
    const app = await startTestApp({ FLAGS_FILE: file, LOG_LEVEL: level }, { dir, logger });
    apps.push(app);
    return { app, file, lines };
  }

  it('takes a kill written by hand at once on a first start, and a later API write keeps it', async () => {
    const { app, file, lines } = await firstStart();
    expect(lines.join('')).not.toMatch(/cannot watch/);
    const browser = await app.socket();
    expect(browser.snapshots[0]![KILL_SWITCH]).toBe(true);

    const update = nextEvent(browser, 'flag_update');
    await editByHand(file, kill);
    expect(await update).toMatchObject({ key: KILL_SWITCH, value: false });

    // A write to another flag is made on top of the edit, never over it.
    expect((await app.patchFlag(THEME, { defaultVariant: 'dark' })).status).toBe(200);
    const flags = await readFlags(file);
    expect(flags[KILL_SWITCH]!.state).toBe('DISABLED');
    expect(flags[THEME]!.defaultVariant).toBe('dark');
    expect(app.repository!.audit.recent(5).map((entry) => entry.actor.source)).toEqual([
      'api',
      'file',
      'system',
      'system',
      'system',
    ]);
  });

  it('makes an API write on top of an edit it has not loaded yet (its watch event still to come)', async () => {
    const { app, file } = await firstStart();
    await editByHand(file, kill);
    // At once, well inside the watcher's debounce: the write must find the edit, not replace it.
    expect((await app.patchFlag(THEME, { defaultVariant: 'aurora' })).status).toBe(200);
    const flags = await readFlags(file);
    expect(flags[KILL_SWITCH]!.state).toBe('DISABLED');
    expect(flags[THEME]!.defaultVariant).toBe('aurora');
    expect(app.repository!.get(KILL_SWITCH)!.definition.state).toBe('DISABLED');
  });

  it('keeps a broken edit beside the file when a write has to replace it: no edit is lost', async () => {
    const { app, file } = await firstStart();
    const broken = '{ "flags": { oops';
    await writeFile(file, broken);
    await waitFor(
      () => app.repository!.status().status === ProviderStatus.READY && app.repository!.get(KILL_SWITCH) !== undefined,
      5000,
      'the refusal',
    );
    const refused = path.join(path.dirname(file), 'flags.refused.json');
    await waitFor(
      async () => (await app.patchFlag(THEME, { defaultVariant: 'dark' })).status === 200,
      5000,
      'the write',
    );
    expect(await readFile(refused, 'utf8')).toBe(broken);
    expect(await modeOf(refused)).toBe(0o600);
    expect((await readFlags(file))[THEME]!.defaultVariant).toBe('dark');
  });

  it('keeps targeting, versions and the audit to its owner: files 0600 in a 0700 folder', async () => {
    const { app, file } = await firstStart();
    expect((await app.patchFlag(THEME, { defaultVariant: 'dark' })).status).toBe(200);
    const folder = path.dirname(file);
    expect(await modeOf(folder)).toBe(0o700);
    for (const name of ['flags.json', 'flags.versions.json', 'flags.audit.jsonl']) {
      await waitFor(async () => (await stat(path.join(folder, name)).catch(() => undefined)) !== undefined, 5000, name);
      expect(await modeOf(path.join(folder, name))).toBe(0o600);
    }
  });

  it('makes a flag folder an older version left readable by others private', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'killswitch-open-'));
    dirs.push(dir);
    const { chmod } = await import('node:fs/promises');
    await chmod(dir, 0o755);
    await writeFile(path.join(dir, 'flags.json'), JSON.stringify(defaultFlagDocument()), { mode: 0o644 });
    apps.push(await startTestApp({}, { dir }));
    expect(await modeOf(dir)).toBe(0o700);
  });

  it('keeps named tokens (`npm run token` on a fresh clone) in a private folder too', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'killswitch-tokens-'));
    dirs.push(dir);
    const folder = path.join(dir, 'data');
    const store = createFileTokenStore({ dir: folder, logger: createLogger('silent') });
    expect(
      await store.add({
        name: 'ci-bot',
        scope: 'full',
        digest: digestOf(newToken()),
        createdAt: new Date().toISOString(),
      }),
    ).toBe(true);
    expect(await modeOf(folder)).toBe(0o700);
    expect(await modeOf(path.join(folder, 'tokens.json'))).toBe(0o600);
  });

  it("generates an admin token in the named tokens' form, in a private folder", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'killswitch-token-'));
    dirs.push(dir);
    const file = path.join(dir, 'data', 'admin-token');
    const { token, generated } = await resolveAdminToken({
      configured: undefined,
      file,
      logger: createLogger('silent'),
    });
    expect(generated).toBe(true);
    expect(token).toMatch(new RegExp(`^${TOKEN_IN_TEXT.source}$`));
    expect(await modeOf(path.dirname(file))).toBe(0o700);
    expect(await modeOf(file)).toBe(0o600);
  });
});

describe('the flag file, read as flagd reads it', () => {
  const apps: TestApp[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.stop();
  });

  const variants = { red: 'red', blue: 'blue', fallback: 'fallback' };
  const premium = { '==': [{ var: 'tier' }, 'premium'] };
  /** Flags flagd loads and evaluates, in the shapes its own conformance files use. */
  const flagdShapes = {
    'nested-weight': {
      state: 'ENABLED',
      variants,
      defaultVariant: 'fallback',
      targeting: { fractional: [{ var: 'targetingKey' }, ['red', { if: [premium, 100, 0] }], ['blue', 10]] },
    },
    'nested-variant': {
      state: 'ENABLED',
      variants,
      defaultVariant: 'fallback',
      targeting: { fractional: [{ var: 'targetingKey' }, [{ var: 'color' }, 50], ['blue', 50]] },
    },
    'as-condition': {
      state: 'ENABLED',
      variants,
      defaultVariant: 'fallback',
      targeting: {
        if: [
          {
            fractional: [
              [false, 0],
              [true, 100],
            ],
          },
          'red',
          'blue',
        ],
      },
    },
    // A branch naming a variant the flag lacks: flagd serves the rest, and an error to that branch alone.
    'missing-branch': {
      state: 'ENABLED',
      variants,
      defaultVariant: 'fallback',
      targeting: { if: [{ starts_with: [{ var: 'id' }, 'abc'] }, 'red', 'nope'] },
    },
    versions: {
      state: 'ENABLED',
      variants,
      defaultVariant: 'fallback',
      targeting: { if: [{ sem_ver: [{ var: 'version' }, '^', '1.0.0'] }, 'red', 'blue'] },
    },
    'shared-rule': {
      state: 'ENABLED',
      variants,
      defaultVariant: 'fallback',
      targeting: { if: [{ $ref: 'isPremium' }, 'red', 'blue'] },
    },
    'string-weights': { state: 'ENABLED', variants, defaultVariant: 'fallback', metadata: { owner: 'growth' } },
  };
  /** Flags flagd loads but cannot evaluate: each answers its fallback with PARSE_ERROR. */
  const unservable = {
    'unknown-operator': {
      state: 'ENABLED',
      variants,
      defaultVariant: 'red',
      targeting: { if: [{ no_such_operator: [1] }, 'red', 'blue'] },
    },
    'missing-ref': {
      state: 'ENABLED',
      variants,
      defaultVariant: 'red',
      targeting: { if: [{ $ref: 'nowhere' }, 'red', 'blue'] },
    },
    'prototype-operator': JSON.parse(
      '{"state":"ENABLED","variants":{"red":"red"},"defaultVariant":"red","targeting":{"if":[{"__defineGetter__":[1]},"red","red"]}}',
    ),
    'bad-state': { state: 'SOMETIMES', variants, defaultVariant: 'red' },
  };

  it('serves every flag it can beside one it cannot, and a kill written with them is taken', async () => {
    const { logger, lines } = capturingLogger('warn');
    const dir = await mkdtemp(path.join(tmpdir(), 'killswitch-flagd-'));
    const document = defaultFlagDocument();
    kill(document);
    Object.assign(document, { metadata: { team: 'launch' }, $evaluators: { isPremium: premium } });
    Object.assign(document.flags, flagdShapes, unservable);
    await writeFile(path.join(dir, 'flags.json'), JSON.stringify(document, null, 2));
    const app = await startTestApp({ LOG_LEVEL: 'warn' }, { dir, logger });
    apps.push(app);

    expect((await app.request('/readyz')).status).toBe(200);
    expect(app.isReady()).toBe(true);
    expect((await app.socket()).snapshots[0]![KILL_SWITCH]).toBe(false);
    const resolve = (key: string, context: Record<string, unknown> = {}) =>
      app.provider.resolve('string', key, 'code-default', { targetingKey: 'viewer-1', ...context });
    for (const key of Object.keys(unservable)) {
      expect(await resolve(key)).toMatchObject({ value: 'code-default', errorCode: 'PARSE_ERROR' });
      expect(lines.join('')).toContain(`flag \\"${key}\\"`);
    }
    expect([...app.provider.flagProblems().keys()].sort()).toEqual(Object.keys(unservable).sort());
    expect(await resolve('nested-weight', { tier: 'premium' })).toMatchObject({ value: 'red' });
    expect(await resolve('nested-weight', { tier: 'basic' })).toMatchObject({ value: 'blue' });
    expect(await resolve('as-condition')).toMatchObject({ value: 'red' });
    expect(await resolve('missing-branch', { id: 'abc1' })).toMatchObject({ value: 'red' });
    expect(await resolve('versions', { version: '1.4.0' })).toMatchObject({ value: 'red' });
    expect(await resolve('shared-rule', { tier: 'premium' })).toMatchObject({ value: 'red' });

    // The launch-control page names the flags it cannot serve (the state it is sent after a write).
    const admin = await app.socket({ auth: { role: 'admin' } });
    const announced = nextEvent(admin, 'admin_state');
    expect((await app.patchFlag(THEME, { defaultVariant: 'dark' })).status).toBe(200);
    const state = await announced;
    const problems = Object.fromEntries(
      state.flags.filter((flag) => flag.problem).map((flag) => [flag.key, flag.problem]),
    );
    expect(Object.keys(problems).sort()).toEqual(Object.keys(unservable).sort());
    expect(problems['unknown-operator']).toMatch(/no_such_operator/);

    // A write keeps every flag as written, those it cannot serve included; a write to one of them is strict.
    const written = await readFlags(path.join(dir, 'flags.json'));
    expect(written['unknown-operator']).toEqual(unservable['unknown-operator']);
    expect(written['nested-weight']).toEqual(flagdShapes['nested-weight']);
    const strict = await app.patchFlag('unknown-operator', { state: 'DISABLED' });
    expect(strict.status).toBe(400);
    expect(strict.body.field).toMatch(/^targeting/);
  });

  it('refuses a document whose shape is wrong as a whole, and keeps serving the last good flags', async () => {
    const { logger, lines } = capturingLogger('warn');
    const app = await startTestApp({ LOG_LEVEL: 'warn' }, { logger });
    apps.push(app);
    const before = app.repository!.get(KILL_SWITCH)!.version;
    const refusals = () => lines.filter((line) => line.includes('refused a broken edit of the flag file')).length;
    for (const [index, text] of [
      'not json',
      '[]',
      '{"flags": []}',
      '{"flags": {}, "$evaluators": "x"}',
      '{"flags": {}, "metadata": [1]}',
    ].entries()) {
      await writeFile(app.flagsFile, text);
      await waitFor(() => refusals() === index + 1, 5000, `the refusal of ${text}`);
      expect(app.repository!.get(KILL_SWITCH)).toMatchObject({ version: before, definition: { state: 'ENABLED' } });
    }
    expect(app.isReady()).toBe(true);
  });
});
