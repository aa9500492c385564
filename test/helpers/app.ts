import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { io as connect, type Socket } from 'socket.io-client';
import { loadConfig } from '../../server/config.js';
import { createLogger, type Logger } from '../../server/observability/logger.js';
import { startApp, type RunningApp, type StartOptions } from '../../server/runtime.js';

export const TEST_TOKEN = 'test-admin-token-0123456789';

export interface TestApp extends RunningApp {
  dir: string;
  flagsFile: string;
  env: Record<string, string>;
  /** fetch against the app, with the body parsed when it is JSON. */
  request(pathname: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: any; text: string }>;
  patchFlag(key: string, patch: unknown, headers?: Record<string, string>): Promise<{ status: number; headers: Headers; body: any; text: string }>;
  /** A connected socket.io-client; `snapshots` holds every flag_snapshot it got, from the first. */
  socket(options?: { cookie?: string; auth?: Record<string, unknown> }): Promise<Socket & { snapshots: any[] }>;
  /** Disconnects every socket the test opened so far. */
  closeSockets(): void;
  stop(): Promise<void>;
}

/**
 * A real app on port 0 with its own flag folder and, unless the test brings its own third
 * party, its own simulator (fast: a few ms of latency, no random errors).
 */
export async function startTestApp(
  env: Record<string, string> = {},
  options: { dir?: string; start?: StartOptions; logger?: Logger } = {},
): Promise<TestApp> {
  const dir = options.dir ?? (await mkdtemp(path.join(tmpdir(), 'killswitch-')));
  const flagsFile = path.join(dir, 'flags.json');
  const fullEnv = {
    PORT: '0',
    SIMULATOR_PORT: '0',
    SIMULATOR_LATENCY_MS: '5',
    SIMULATOR_ERROR_RATE: '0',
    ADMIN_TOKEN: TEST_TOKEN,
    FLAGS_FILE: flagsFile,
    LOG_LEVEL: 'silent',
    RESTORE_JITTER_MS: '200',
    SHUTDOWN_GRACE_MS: '2000',
    ...env,
  };
  const app = await startApp(loadConfig(fullEnv), options.logger ?? createLogger('silent'), { collectDefaultMetrics: false, ...options.start });
  const sockets: Socket[] = [];

  const request: TestApp['request'] = async (pathname, init) => {
    const response = await fetch(app.url + pathname, init);
    const text = await response.text();
    let body: any = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: response.status, headers: response.headers, body, text };
  };

  return {
    ...app,
    dir,
    flagsFile,
    env: fullEnv,
    request,
    patchFlag: (key, patch, headers = {}) =>
      request(`/api/flags/${encodeURIComponent(key)}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/merge-patch+json', ...headers },
        body: typeof patch === 'string' ? patch : JSON.stringify(patch),
      }),
    async socket(socketOptions = {}) {
      const socket = connect(app.url, {
        transports: ['websocket'],
        reconnection: true,
        reconnectionDelay: 50,
        reconnectionDelayMax: 200,
        extraHeaders: socketOptions.cookie ? { cookie: socketOptions.cookie } : {},
        auth: socketOptions.auth ?? {},
        forceNew: true,
        autoConnect: false,
      });
      sockets.push(socket);
      const snapshots: any[] = [];
      socket.on('flag_snapshot', (snapshot) => snapshots.push(snapshot));
      socket.connect();
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('connect_error', reject);
      });
      return Object.assign(socket, { snapshots });
    },
    closeSockets() {
      for (const socket of sockets.splice(0)) socket.disconnect();
    },
    async stop() {
      for (const socket of sockets) socket.disconnect();
      await app.close();
      if (!options.dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves with the next `event` on `socket`, or rejects after `ms`. */
export function nextEvent<T = any>(socket: Socket, event: string, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    socket.once(event, (payload: T) => {
      clearTimeout(timer);
      resolve(payload);
    });
  });
}

/** Collects every `event` on `socket` from now on. */
export function record<T = any>(socket: Socket, event: string): T[] {
  const seen: T[] = [];
  socket.on(event, (payload: T) => seen.push(payload));
  return seen;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` is true (or throws after `ms`). */
export async function waitFor(check: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** The sum of a Prometheus counter's samples whose labels include `labels`. */
export function counterValue(metricsText: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = line.match(/^([a-z_]+)(?:\{([^}]*)\})? ([0-9.e+-]+)$/);
    if (!match || match[1] !== name) continue;
    const present = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => present[k] === v)) total += Number(match[3]);
  }
  return total;
}
