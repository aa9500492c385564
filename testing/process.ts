import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { projectRoot } from '../server/paths.js';

export interface AppProcess {
  child: ChildProcess;
  url: string;
  /** Every log line so far, parsed. */
  logs: any[];
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; ms: number }>;
}

/**
 * Runs one of the server's entry points as `npm start` does: the compiled JavaScript in `dist/`
 * (built once per test run by test/setup/build.ts) under plain Node. `server/main.ts` runs
 * `dist/server/main.js`.
 */
export function runScript(script: string, args: string[], env: Record<string, string>) {
  const compiled = script.replace(/^server\//, 'dist/server/').replace(/\.ts$/, '.js');
  return spawn(process.execPath, [compiled, ...args], {
    cwd: projectRoot,
    // Only what the test asks for: not the NODE_OPTIONS of the runner that started the suite.
    env: { ...process.env, ...env, NODE_OPTIONS: env.NODE_OPTIONS ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

const started = new Set<ChildProcess>();

/** Kills every server a test started and did not stop (a test that failed half-way): none outlives its test. */
export async function killLeftoverAppProcesses(): Promise<void> {
  await Promise.all(
    [...started].map(async (child) => {
      started.delete(child);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }),
  );
}

/** Starts the server (`dist/server/main.js`, what `npm start` runs) and resolves once it logs the URL it listens on. */
export async function startAppProcess(env: Record<string, string>): Promise<AppProcess> {
  const child = runScript('server/main.ts', [], { PORT: '0', SIMULATOR_PORT: '0', SIMULATOR_LATENCY_MS: '5', ...env });
  started.add(child);
  child.once('exit', () => started.delete(child));
  let text = '';
  const logs: any[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start within 20 s:\n${text}`)), 20_000);
    let partial = ''; // a line split across chunks is read whole
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        try {
          const entry = JSON.parse(line);
          logs.push(entry);
          if (entry.url && /feed live/.test(entry.msg)) {
            clearTimeout(timer);
            resolve(entry.url);
          }
        } catch {
          /* not a log line */
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`exited with ${code} before listening:\n${text}`)));
  });
  return {
    child,
    url,
    logs,
    output: () => text,
    async stop(signal = 'SIGTERM') {
      const started = performance.now();
      const closed = once(child, 'close'); // after its output is read to the end
      child.kill(signal);
      const [code] = await closed;
      return { code, ms: performance.now() - started };
    },
  };
}

/** Runs a command to its end and gives its exit code and output. */
export async function runToEnd(script: string, args: string[], env: Record<string, string>) {
  const child = runScript(script, args, env);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = await once(child, 'close');
  return { code: code as number, stdout, stderr };
}
