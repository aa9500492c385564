/**
 * `npm run token -- <create NAME [--read-only]|list|revoke NAME>`: named access tokens. It works on
 * the token store itself (beside FLAGS_FILE, or in Redis with REDIS_URL), so it needs no running
 * server; every running server sees a change at once (a watched file, or Redis pub/sub).
 * The command's logic lives here, apart from its entry point (cli.ts), so that tests run it in
 * their own process, where a mutation run can see it.
 */
import { Redis } from 'ioredis';
import { table, minuteOf } from '../cli/table.js';
import { ConfigError, loadConfig } from '../config.js';
import { storeFiles } from '../store-files.js';
import { createLogger } from '../observability/logger.js';
import { createFileTokenStore, createRedisTokenStore, type TokenStore } from './token-store.js';
import { ADMIN_TOKEN_NAME, digestOf, newToken, TOKEN_NAME, type TokenInfo } from './tokens.js';

export const USAGE = `usage: npm run token -- <command>

  create NAME [--read-only]   make a token named NAME and print it (once: only its hash is kept)
  list                        every token: name, scope, created, last used (never the token)
  revoke NAME                 the token stops working at once, on every instance

The token named "${ADMIN_TOKEN_NAME}" is ADMIN_TOKEN (or the one the server generated beside the flag file).
Tokens are kept beside FLAGS_FILE (tokens.json, mode 0600), or in Redis when REDIS_URL is set.`;

/** A refusal the user can act on: shown as one line, `token: ...`. */
export class CliError extends Error {}

/** One command against a token store; prints with `print`, resolves to the exit code (or throws a CliError). */
export async function runTokenCommand(
  argv: string[],
  store: TokenStore,
  print: (line: string) => void,
): Promise<number> {
  const [command, name, ...flags] = argv;
  switch (command) {
    case 'create': {
      if (!name || !TOKEN_NAME.test(name))
        throw new CliError(
          'a token needs a name: lowercase letters, digits, ".", "_" or "-", at most 40 (e.g. ci-bot)',
        );
      if (name === ADMIN_TOKEN_NAME) throw new CliError(`"${ADMIN_TOKEN_NAME}" is ADMIN_TOKEN; choose another name`);
      const unknown = flags.filter((flag) => flag !== '--read-only');
      if (unknown.length) throw new CliError(`unknown option ${unknown.join(' ')}`);
      const token = newToken();
      const scope = flags.includes('--read-only') ? 'read-only' : 'full';
      if (!(await store.add({ name, scope, digest: digestOf(token), createdAt: new Date().toISOString() }))) {
        throw new CliError(`a token named "${name}" exists; revoke it first, or choose another name`);
      }
      print(`Created ${scope} token "${name}". It is shown this once; only its hash is kept:\n\n  ${token}\n`);
      print(
        scope === 'full'
          ? 'It reads and writes flags; the audit names it as who changed them.'
          : 'It reads /api and watches /admin; a write with it is refused (403).',
      );
      return 0;
    }
    case 'list': {
      const [tokens, used] = await Promise.all([store.list(), store.lastUsed()]);
      const rows: TokenInfo[] = [
        {
          name: ADMIN_TOKEN_NAME,
          scope: 'full',
          createdAt: undefined,
          lastUsedAt: used[ADMIN_TOKEN_NAME],
          builtIn: true,
        },
        ...tokens
          .filter((t) => t.name !== ADMIN_TOKEN_NAME)
          .map((t) => ({
            name: t.name,
            scope: t.scope,
            createdAt: t.createdAt,
            lastUsedAt: used[t.name],
            builtIn: false,
          })),
      ];
      print(
        table([
          ['NAME', 'SCOPE', 'CREATED', 'LAST USED'],
          ...rows.map((row) => [
            row.name,
            row.scope,
            row.builtIn ? 'ADMIN_TOKEN' : minuteOf(row.createdAt),
            minuteOf(row.lastUsedAt),
          ]),
        ]),
      );
      return 0;
    }
    case 'revoke': {
      if (!name) throw new CliError('which token? npm run token -- revoke NAME');
      if (name === ADMIN_TOKEN_NAME)
        throw new CliError(
          `"${ADMIN_TOKEN_NAME}" is ADMIN_TOKEN: change ADMIN_TOKEN (or delete the admin-token file) and restart the servers`,
        );
      if (!(await store.remove(name))) throw new CliError(`no token named "${name}" (npm run token -- list)`);
      print(`Revoked "${name}": every server refuses it from now on, and its admin sessions are over.`);
      return 0;
    }
    default:
      print(USAGE);
      return command && !['help', '--help', '-h'].includes(command) ? 2 : 0;
  }
}

async function main(argv: string[], env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<number> {
  const config = loadConfig(env);
  const logger = createLogger('silent');
  const redis = config.redisUrl
    ? new Redis(config.redisUrl, { maxRetriesPerRequest: 1, connectTimeout: 3000 })
    : undefined;
  redis?.on('error', () => undefined);
  const store = redis
    ? createRedisTokenStore({ redis, logger })
    : createFileTokenStore({ dir: storeFiles(config.flagsFile).dir, logger });
  try {
    return await runTokenCommand(argv, store, log);
  } catch (error) {
    if (redis && !(error instanceof CliError))
      throw new CliError(`cannot reach Redis at ${config.redisUrl} (${(error as Error).message})`);
    throw error;
  } finally {
    redis?.disconnect();
  }
}

/**
 * The whole `npm run token`: the store of this environment, the command, and its exit code (1
 * after a refusal, printed as one line on `console.error`; an unexpected error in full).
 */
export function runTokenCli(
  argv: string[],
  env: NodeJS.ProcessEnv,
  console: Pick<Console, 'log' | 'error'>,
): Promise<number> {
  return main(argv, env, (line) => console.log(line)).catch((error: unknown) => {
    console.error(error instanceof CliError || error instanceof ConfigError ? `token: ${error.message}` : error);
    return 1;
  });
}
