import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runTokenCli, USAGE } from '../../server/access/token-command.js';
import { createFileTokenStore, tokenFiles } from '../../server/access/token-store.js';
import { digestOf, TOKEN_IN_TEXT } from '../../server/access/tokens.js';
import { createLogger } from '../../server/observability/logger.js';
import { waitFor } from '../helpers/app.js';
import { freePort, TestRedis } from '../../testing/redis.js';

// `npm run token` as its entry point runs it (server/access/cli.ts), in this process: the same
// argv, environment and console, and the exit code it would exit with. The CLI as a child process
// has its own tests in test/integration/access.test.ts.

/** Runs `npm run token -- ...args` with this environment; what it printed, and its exit code. */
async function token(env: Record<string, string>, ...args: string[]) {
  const out: string[] = [];
  const err: unknown[] = [];
  const code = await runTokenCli(args, env, {
    log: (line: string) => out.push(line),
    error: (value: unknown) => err.push(value),
  });
  return { code, stdout: out.join('\n'), stderr: err.map(String).join('\n'), errors: err };
}

const shownToken = (stdout: string) => TOKEN_IN_TEXT.exec(stdout)?.[0];
const MINUTE = /\d{4}-\d\d-\d\d \d\d:\d\d UTC/;

describe('npm run token, on the token file beside FLAGS_FILE', () => {
  let dir: string;
  let env: Record<string, string>;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'killswitch-token-cli-'));
    env = { FLAGS_FILE: path.join(dir, 'flags.json') };
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('create prints a new token once, keeps only its digest, and says what it may do', async () => {
    const created = await token(env, 'create', 'ci-bot');
    expect(created).toMatchObject({ code: 0, stderr: '' });
    const secret = shownToken(created.stdout)!;
    expect(created.stdout).toBe(
      `Created full token "ci-bot". It is shown this once; only its hash is kept:\n\n  ${secret}\n\nIt reads and writes flags; the audit names it as who changed them.`,
    );
    const [kept] = await createFileTokenStore({ dir, logger: createLogger('silent') }).list();
    expect(kept).toEqual({ name: 'ci-bot', scope: 'full', digest: digestOf(secret), createdAt: expect.any(String) });
    expect(Math.abs(Date.parse(kept!.createdAt!) - Date.now())).toBeLessThan(60_000);
    expect(await readFile(tokenFiles(dir).tokens, 'utf8')).not.toContain(secret);

    const reader = await token(env, 'create', 'dashboards', '--read-only');
    expect(reader.code).toBe(0);
    expect(reader.stdout).toMatch(/^Created read-only token "dashboards"\./);
    expect(reader.stdout).toMatch(/It reads \/api and watches \/admin; a write with it is refused \(403\)\.$/);
    expect(shownToken(reader.stdout)).not.toBe(secret);
    expect(
      (await createFileTokenStore({ dir, logger: createLogger('silent') }).list()).map((t) => [t.name, t.scope]),
    ).toEqual([
      ['ci-bot', 'full'],
      ['dashboards', 'read-only'],
    ]);
  });

  it('refuses, in one line and with exit code 1, what it cannot do', async () => {
    expect((await token(env, 'create', 'ci-bot')).code).toBe(0);
    for (const [args, message] of [
      [['create', 'ci-bot'], 'token: a token named "ci-bot" exists; revoke it first, or choose another name'],
      [['create', 'admin'], 'token: "admin" is ADMIN_TOKEN; choose another name'],
      [['create'], 'token: a token needs a name: lowercase letters, digits, ".", "_" or "-", at most 40 (e.g. ci-bot)'],
      [
        ['create', 'Not-A-Name'],
        'token: a token needs a name: lowercase letters, digits, ".", "_" or "-", at most 40 (e.g. ci-bot)',
      ],
      [
        ['create', 'x'.repeat(41)],
        'token: a token needs a name: lowercase letters, digits, ".", "_" or "-", at most 40 (e.g. ci-bot)',
      ],
      [['create', 'deploy', '--admin', '--read-only', '-f'], 'token: unknown option --admin -f'],
      [['revoke'], 'token: which token? npm run token -- revoke NAME'],
      [
        ['revoke', 'admin'],
        'token: "admin" is ADMIN_TOKEN: change ADMIN_TOKEN (or delete the admin-token file) and restart the servers',
      ],
      [['revoke', 'nobody'], 'token: no token named "nobody" (npm run token -- list)'],
    ] as const) {
      expect(await token(env, ...args)).toMatchObject({ code: 1, stdout: '', stderr: message });
    }
    // Nothing was made by a refused create.
    expect((await createFileTokenStore({ dir, logger: createLogger('silent') }).list()).map((t) => t.name)).toEqual([
      'ci-bot',
    ]);
    for (const name of ['.hidden', '-x', '_x', 'deploy bot', 'ci-bot/2', 'ci-bot\n', 'ci:bot']) {
      expect(await token(env, 'create', name), JSON.stringify(name)).toMatchObject({
        code: 1,
        stderr: expect.stringMatching(/^token: a token needs a name/),
      });
    }
    // A name of 40 is a name; so are digits, dots, underscores and dashes after the first character.
    for (const name of [`a${'b'.repeat(39)}`, '0', 'ci.bot_1-a'])
      expect((await token(env, 'create', name)).code, name).toBe(0);
  });

  it('revoke removes the token and says what that does', async () => {
    await token(env, 'create', 'left-the-team');
    expect(await token(env, 'revoke', 'left-the-team')).toEqual({
      code: 0,
      stdout: 'Revoked "left-the-team": every server refuses it from now on, and its admin sessions are over.',
      stderr: '',
      errors: [],
    });
    expect(await createFileTokenStore({ dir, logger: createLogger('silent') }).list()).toEqual([]);
  });

  it('list shows every token with its scope, creation and last use, the admin first, never a token', async () => {
    const ci = shownToken((await token(env, 'create', 'ci-bot')).stdout)!;
    await token(env, 'create', 'dashboards', '--read-only');
    const store = createFileTokenStore({ dir, logger: createLogger('silent') });
    await store.markUsed('ci-bot', '2026-12-07T08:05:59.999Z');
    await store.markUsed('admin', '2026-12-07T09:00:00.000Z');
    // A record named "admin" (tokens.json edited by hand) is not listed as a second admin.
    await store.add({ name: 'admin', scope: 'read-only', digest: digestOf('ks_x') });

    const listed = await token(env, 'list');
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toContain(ci);
    const rows = listed.stdout.split('\n');
    expect(rows).toHaveLength(4);
    expect(rows[0]).toBe('NAME        SCOPE      CREATED               LAST USED');
    expect(rows[1]).toBe('admin       full       ADMIN_TOKEN           2026-12-07 09:00 UTC');
    expect(rows[2]).toMatch(new RegExp(`^ci-bot      full       ${MINUTE.source}  2026-12-07 08:05 UTC$`));
    expect(rows[3]).toMatch(new RegExp(`^dashboards  read-only  ${MINUTE.source}  -$`));
  });

  it('prints its usage for help, and for a command it does not know (exit code 2)', async () => {
    for (const help of [[], ['help'], ['--help'], ['-h']])
      expect(await token(env, ...help)).toEqual({ code: 0, stdout: USAGE, stderr: '', errors: [] });
    expect(await token(env, 'delete', 'ci-bot')).toEqual({ code: 2, stdout: USAGE, stderr: '', errors: [] });
    expect(USAGE).toMatch(/^usage: npm run token -- <command>/);
  });

  it('names a bad environment variable in one line', async () => {
    expect(await token({ ...env, PORT: 'abc' }, 'list')).toMatchObject({
      code: 1,
      stdout: '',
      stderr: expect.stringMatching(/^token: Invalid environment variable PORT="abc"/),
    });
  });

  it('shows an unexpected failure in full, not as a one-line refusal', async () => {
    await writeFile(tokenFiles(dir).tokens, 'not json');
    const failed = await token(env, 'list');
    expect(failed.code).toBe(1);
    expect(failed.errors).toHaveLength(1);
    expect(failed.errors[0]).toBeInstanceOf(SyntaxError);
  });
});

describe('npm run token, with REDIS_URL', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await TestRedis.create({ persist: false });
  });
  afterAll(() => redis.destroy());

  it('works on the tokens in Redis, and keeps its own refusals as they are', async () => {
    const env = { REDIS_URL: redis.url, FLAGS_FILE: path.join(tmpdir(), 'killswitch-unused', 'flags.json') };
    const created = await token(env, 'create', 'fleet-bot');
    expect(created.code).toBe(0);
    const client = redis.client();
    try {
      const kept = JSON.parse((await client.hget('killswitch:tokens', 'fleet-bot'))!);
      expect(kept).toMatchObject({ name: 'fleet-bot', scope: 'full', digest: digestOf(shownToken(created.stdout)!) });
    } finally {
      client.disconnect();
    }
    expect((await token(env, 'list')).stdout).toMatch(/^fleet-bot\s+full\s/m);
    expect(await token(env, 'create', 'fleet-bot')).toMatchObject({
      code: 1,
      stderr: 'token: a token named "fleet-bot" exists; revoke it first, or choose another name',
    });
    expect((await token(env, 'revoke', 'fleet-bot')).code).toBe(0);
  });

  it('says in one line, and soon, that Redis cannot be reached', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const started = performance.now();
    const failed = await token({ REDIS_URL: url }, 'list');
    // One retry, not ioredis's twenty (about ten seconds of them): a person is waiting.
    expect(performance.now() - started).toBeLessThan(5000);
    expect(failed).toMatchObject({ code: 1, stdout: '' });
    expect(failed.stderr).toMatch(new RegExp(`^token: cannot reach Redis at ${url} \\(.+\\)$`));
  });

  it('leaves no connection to Redis behind', async () => {
    const client = redis.client();
    const connected = async () => Number(/connected_clients:(\d+)/.exec(await client.info('clients'))![1]);
    try {
      const before = await connected();
      for (const args of [['list'], ['revoke', 'nobody']]) {
        await token({ REDIS_URL: redis.url }, ...args);
        await waitFor(async () => (await connected()) === before, 5000, "the CLI's connection closed");
      }
    } finally {
      client.disconnect();
    }
  });
});
