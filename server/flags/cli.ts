/**
 * `npm run flag -- <list|get|kill|restore> [key]`: the command-line switch. It talks to the
 * running server's API (so a flip from the terminal reaches every browser), with the admin token
 * from ADMIN_TOKEN or from the file the server keeps beside the flag store.
 *
 *   FLAG_API_URL   the server (default http://HOST:PORT, i.e. http://127.0.0.1:3000)
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { ConfigError, loadConfig } from '../config.js';
import { KILL_SWITCH } from './catalog.js';
import { KILL_PATCH, restorePatch } from './kill-switch.js';
import { storeFiles } from './store.js';
import type { FlagRecord } from './types.js';

const USAGE = `usage: npm run flag -- <command> [key]

  list              every flag, its state and version
  get [key]         one flag's definition (default key: ${KILL_SWITCH})
  kill [key]        disable the flag: it serves its safe default (killed)
  restore [key]     enable the flag again

environment: FLAG_API_URL (default http://HOST:PORT), ADMIN_TOKEN (default: the server's token file)`;

class CliError extends Error {}

function describe(record: FlagRecord): string {
  const { state, defaultVariant, variants, targeting } = record.definition;
  const value = JSON.stringify(variants[defaultVariant]);
  return `${record.key}  ${state.padEnd(8)}  default ${defaultVariant}=${value}${targeting ? '  +targeting' : ''}  v${record.version}`;
}

async function main(argv: string[]): Promise<number> {
  const [command, key = KILL_SWITCH] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  const config = loadConfig();
  const base = (process.env.FLAG_API_URL ?? `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`).replace(/\/+$/, '');

  const call = async (path: string, init: RequestInit = {}): Promise<{ status: number; body: any }> => {
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(10_000) });
    } catch (error) {
      throw new CliError(`cannot reach the server at ${base} (${(error as Error).cause ?? (error as Error).message}). Is it running? Set FLAG_API_URL if it is elsewhere.`);
    }
    const body = (await response.json().catch(() => ({}))) as Record<string, any>;
    if (!response.ok) throw new CliError(`${response.status}: ${body.message ?? response.statusText}`);
    return { status: response.status, body };
  };

  const token = async (): Promise<string> => {
    if (config.adminToken) return config.adminToken;
    const file = storeFiles(config.flagsFile).adminToken;
    try {
      return (await readFile(file, 'utf8')).trim();
    } catch {
      throw new CliError(`no admin token: set ADMIN_TOKEN, or run this where the server keeps ${file}`);
    }
  };

  const patch = async (record: FlagRecord, body: unknown): Promise<FlagRecord> =>
    (
      await call(`/api/flags/${encodeURIComponent(record.key)}`, {
        method: 'PATCH',
        headers: {
          authorization: `Bearer ${await token()}`,
          'content-type': 'application/merge-patch+json',
          'if-match': `"${record.version}"`,
          'x-actor': `${os.userInfo().username}@${os.hostname()}`,
          'x-change-source': 'cli',
        },
        body: JSON.stringify(body),
      })
    ).body as FlagRecord;

  const get = async () => (await call(`/api/flags/${encodeURIComponent(key)}`)).body as FlagRecord;

  switch (command) {
    case 'list': {
      const { flags } = (await call('/api/flags')).body as { flags: FlagRecord[] };
      for (const record of flags) console.log(describe(record));
      return 0;
    }
    case 'get':
      console.log(JSON.stringify(await get(), null, 2));
      return 0;
    case 'kill': {
      const after = await patch(await get(), KILL_PATCH);
      console.log(`killed: ${describe(after)}`);
      return 0;
    }
    case 'restore': {
      const before = await get();
      const after = await patch(before, restorePatch(before.definition));
      console.log(`restored: ${describe(after)}`);
      return 0;
    }
    default:
      console.error(`unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof CliError || error instanceof ConfigError ? `flag: ${error.message}` : error);
    process.exit(1);
  },
);
