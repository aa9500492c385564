/**
 * `npm run flag -- <list|get|kill|restore> [key]`: the command-line switch. It talks to the
 * running server's API (so a flip from the terminal reaches every browser), with a token:
 * FLAG_TOKEN (any named token; a read-only one can list and get), else ADMIN_TOKEN, else the file
 * the server keeps beside the flag store.
 *
 *   FLAG_API_URL   the server (default http://HOST:PORT, i.e. http://127.0.0.1:3000)
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { minuteOf, table } from '../cli/table.js';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { actorHeader } from '../../protocol/actor-note.js';
import { flagCatalog, KILL_SWITCH } from './catalog.js';
import { KILL_PATCH, restorePatch } from './kill-switch.js';
import { storeFiles } from '../store-files.js';
import type { FlagRecord } from './types.js';
import { RAMP_PATH, type Ramp } from '../../protocol/ramp.js';

const USAGE = `usage: npm run flag -- <command> [key]

  list              every flag, its state and version
  get [key]         one flag's definition (default key: ${KILL_SWITCH})
  kill [key]        disable the flag: it serves its safe default (killed)
  restore [key]     enable the flag again
  restore --guarded [--stages 10,25,50,100] [--hold 30s] [--max-error-rate 0.05] [--min-calls 20]
                    bring the kill switch back stage by stage, rolled back by itself if the third
                    party fails; follows it to its end (exit 0 completed, 1 rolled back or stopped)
  ramp              the running guarded restore, or the last one

environment: FLAG_API_URL (default http://HOST:PORT), FLAG_TOKEN or ADMIN_TOKEN (default: the server's admin-token file)`;

class CliError extends Error {}

type Call = ReturnType<typeof flagApi>['call'];

/** The options that take a value (`--hold 30s`); any other `--option` stands alone. */
const VALUED_OPTIONS = new Set(['--stages', '--hold', '--max-error-rate', '--min-calls']);

/** The command and its key, without the options and their values. */
function positional(argv: string[]): string[] {
  return argv.filter((arg, n) => !arg.startsWith('--') && !VALUED_OPTIONS.has(argv[n - 1] ?? ''));
}

/** `--hold 30s`, `1500ms`, `2m`, or a number of seconds. */
function durationMs(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!match) throw new CliError(`--hold: "${text}" is not a duration (30s, 1500ms, 2m)`);
  return Math.round(Number(match[1]) * { ms: 1, s: 1000, m: 60_000 }[match[2] ?? 's']!);
}

/** The options of `restore --guarded`, as the API's body: only those given (the server has the defaults). */
function rampSettings(argv: string[]): Record<string, unknown> {
  const value = (name: string) => {
    const at = argv.indexOf(name);
    if (at === -1) return undefined;
    const given = argv[at + 1];
    if (given === undefined || given.startsWith('--')) throw new CliError(`${name} needs a value`);
    return given;
  };
  const settings: Record<string, unknown> = {};
  const stages = value('--stages');
  if (stages !== undefined) settings.stages = stages.split(',').map((stage) => Number(stage.trim().replace(/%$/, '')));
  const hold = value('--hold');
  if (hold !== undefined) settings.holdMs = durationMs(hold);
  const rate = value('--max-error-rate');
  if (rate !== undefined) settings.maxErrorRate = Number(rate.replace(/%$/, '')) / (rate.endsWith('%') ? 100 : 1);
  const minCalls = value('--min-calls');
  if (minCalls !== undefined) settings.minCalls = Number(minCalls);
  return settings;
}

async function currentRamp(call: Call): Promise<Ramp> {
  return ((await call(RAMP_PATH)).body as { ramp: Ramp }).ramp;
}

/** One line for where a ramp stands: its stage and share, the guard's figures, or how it ended. */
function rampLine(ramp: Ramp): string {
  const figures = Object.entries(ramp.guard?.services ?? {})
    .map(([service, f]) => `${service} ${f.failed}/${f.calls} failed`)
    .join(', ');
  const stage = `stage ${ramp.stage + 1} of ${ramp.stages.length}: live for ${ramp.percent} %`;
  switch (ramp.status) {
    case 'running':
      return `${stage}${figures ? ` (${figures})` : ''}`;
    case 'completed':
      return 'completed: live for everyone';
    default:
      return `${ramp.status}: ${ramp.reason ?? 'no reason given'} (at ${stage})`;
  }
}

/** Starts a guarded restore and follows it to its end, a line per stage: 0 completed, 1 otherwise. */
async function restoreGuarded(call: Call, settings: Record<string, unknown>): Promise<number> {
  const { ramp } = (
    await call(RAMP_PATH, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-actor': actorHeader(`${os.userInfo().username}@${os.hostname()}`),
        'x-change-source': 'cli',
      },
      body: JSON.stringify(settings),
    })
  ).body as { ramp: Ramp };
  console.log(
    `guarded restore started: stages ${ramp.stages.join(', ')} %, ${ramp.holdMs / 1000} s each; rolled back past ${Math.round(ramp.maxErrorRate * 1000) / 10} % failed calls over at least ${ramp.minCalls}`,
  );
  let said = '';
  let unreachableSince: number | undefined;
  for (let current = ramp; ;) {
    const where = `${current.status}:${current.stage}:${current.percent}`;
    if (where !== said && (current.percent > 0 || current.status !== 'running')) {
      said = where;
      console.log(rampLine(current));
    }
    if (current.status !== 'running') return current.status === 'completed' ? 0 : 1;
    await new Promise((resolve) => setTimeout(resolve, 500));
    try {
      current = await currentRamp(call);
      unreachableSince = undefined;
    } catch (error) {
      // The ramp goes on on the server whatever happens here: a short outage is waited out.
      unreachableSince ??= Date.now();
      if (Date.now() - unreachableSince > 15_000)
        throw new CliError(`${(error as Error).message}; the restore goes on on the server: npm run flag -- ramp`);
    }
  }
}

interface AuditEntry {
  key: string;
  at: string;
  summary: string;
  actor: { source: string; name: string; note?: string };
}

/** One flag a row: its state, its default, its version, and its last change (by which token). */
function flagTable(flags: FlagRecord[], audit: AuditEntry[]): string {
  return table([
    ['FLAG', 'STATE', 'SERVES', 'VERSION', 'LAST CHANGE'],
    ...flags.map((record) => {
      const last = audit.find((entry) => entry.key === record.key);
      return [
        record.key,
        record.definition.state,
        serves(record),
        `v${record.version}`,
        last
          ? `${last.summary}, by ${last.actor.name}${last.actor.note ? ` (${last.actor.note})` : ''} via ${last.actor.source}, ${minuteOf(last.at)}`
          : '-',
      ];
    }),
  ]);
}

/**
 * What a flag serves: a disabled flag serves the code's safe default to everyone, whatever its
 * default variant says; an enabled one its default variant, unless targeting decides.
 */
function serves(record: FlagRecord): string {
  const { state, defaultVariant, variants, targeting } = record.definition;
  if (state === 'DISABLED')
    return `safe default (${JSON.stringify(flagCatalog[record.key]?.safeDefault ?? null)}) to all`;
  const fallback =
    defaultVariant === null || defaultVariant === undefined
      ? 'safe default'
      : `${defaultVariant} = ${JSON.stringify(variants[defaultVariant])}`;
  return targeting ? `by targeting, else ${fallback}` : `${fallback} to all`;
}

function describe(record: FlagRecord): string {
  return `${record.key} ${record.definition.state}, serves ${serves(record)}, v${record.version}`;
}

/** The flags API of the server FLAG_API_URL names (else this machine's), with the token the CLI finds. */
function flagApi(config: Config) {
  const base = (
    process.env.FLAG_API_URL ?? `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`
  ).replace(/\/+$/, '');

  const token = async (): Promise<string> => {
    const named = process.env.FLAG_TOKEN?.trim();
    if (named) return named;
    if (config.adminToken) return config.adminToken;
    const file = storeFiles(config.flagsFile).adminToken;
    try {
      return (await readFile(file, 'utf8')).trim();
    } catch {
      throw new CliError(
        `no token: set FLAG_TOKEN (npm run token -- create NAME) or ADMIN_TOKEN, or run this where the server keeps ${file}`,
      );
    }
  };

  const call = async (path: string, init: RequestInit = {}): Promise<{ status: number; body: unknown }> => {
    let response: Response;
    try {
      const headers = { authorization: `Bearer ${await token()}`, ...(init.headers as Record<string, string>) };
      response = await fetch(`${base}${path}`, { ...init, headers, signal: AbortSignal.timeout(10_000) });
    } catch (error) {
      if (error instanceof CliError) throw error;
      const { cause, message } = error as Error;
      const why = cause instanceof Error ? cause.message : message;
      throw new CliError(
        `cannot reach the server at ${base} (${why}). Is it running? Set FLAG_API_URL if it is elsewhere.`,
        { cause: error },
      );
    }
    const body = (await response.json().catch(() => ({}))) as { message?: string };
    if (!response.ok) throw new CliError(`${response.status}: ${body.message ?? response.statusText}`);
    return { status: response.status, body };
  };

  return {
    call,
    get: async (key: string) => (await call(`/api/flags/${encodeURIComponent(key)}`)).body as FlagRecord,
    patch: async (record: FlagRecord, body: unknown): Promise<FlagRecord> =>
      (
        await call(`/api/flags/${encodeURIComponent(record.key)}`, {
          method: 'PATCH',
          headers: {
            'content-type': 'application/merge-patch+json',
            'if-match': `"${record.version}"`,
            // A user or host name beyond ASCII would make fetch refuse the header: sent as an ext-value.
            'x-actor': actorHeader(`${os.userInfo().username}@${os.hostname()}`),
            'x-change-source': 'cli',
          },
          body: JSON.stringify(body),
        })
      ).body as FlagRecord,
  };
}

async function main(argv: string[]): Promise<number> {
  const [command, key = KILL_SWITCH] = positional(argv);
  if (!command || command === 'help' || argv.includes('--help') || command === '-h') {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  const { call, patch, get: getFlag } = flagApi(loadConfig());
  const get = () => getFlag(key);

  switch (command) {
    case 'list': {
      const [{ flags }, { entries }] = [(await call('/api/flags')).body, (await call('/api/audit?limit=500')).body] as [
        { flags: FlagRecord[] },
        { entries: AuditEntry[] },
      ];
      console.log(flagTable(flags, entries));
      return 0;
    }
    case 'get':
      console.log(JSON.stringify(await get(), null, 2));
      return 0;
    // The server answers a write that changes nothing with the same version: said as such.
    case 'kill': {
      const before = await get();
      const after = await patch(before, KILL_PATCH);
      console.log(
        `${after.version === before.version ? 'already killed, nothing changed' : 'killed'}: ${describe(after)}`,
      );
      return 0;
    }
    case 'ramp':
      console.log(rampLine(await currentRamp(call)));
      return 0;
    case 'restore': {
      if (argv.includes('--guarded')) {
        if (key !== KILL_SWITCH) throw new CliError(`a guarded restore is for the kill switch (${KILL_SWITCH}) only`);
        return restoreGuarded(call, rampSettings(argv));
      }
      const before = await get();
      const after = await patch(before, restorePatch(before.definition));
      console.log(
        `${after.version === before.version ? 'already live, nothing changed' : 'restored'}: ${describe(after)}`,
      );
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
