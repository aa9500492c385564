import { Writable } from 'node:stream';
import { rm } from 'node:fs/promises';
import { io as connect, type Socket } from 'socket.io-client';
import { createLogger, type Logger } from '../../server/observability/logger.js';
import type { FlagValue } from '@openfeature/server-sdk';
import type { ServerToClientEvents } from '../../server/realtime/events.js';
import type { RunningApp, StartOptions } from '../../server/runtime/start.js';
import { startLocalApp } from '../../testing/app.js';
import { TestRedis } from '../../testing/redis.js';

export const TEST_TOKEN = 'test-admin-token-0123456789';
/** The marker `delivered` sends; no page listens for it. */
const DELIVERED = 'test:delivered';

export interface TestApp extends RunningApp {
  dir: string;
  flagsFile: string;
  env: Record<string, string>;
  /** fetch against the app, with the body parsed when it is JSON; `/api` calls carry the admin token unless they set `authorization`. */
  request(pathname: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: any; text: string }>;
  patchFlag(
    key: string,
    patch: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; headers: Headers; body: any; text: string }>;
  /**
   * A connected socket.io-client; `snapshots` holds every flag_snapshot it got, from the first.
   * A browser's socket resolves once its snapshot is in (it is registered for pushes from then on).
   */
  socket(options?: {
    cookie?: string;
    auth?: Record<string, unknown>;
  }): Promise<Socket & { snapshots: Record<string, FlagValue>[] }>;
  /**
   * Resolves once everything this app has pushed so far has reached `sockets`: the pusher has
   * handed every change queued so far to the sockets, then a marker the server emits after that
   * arrives on each (Socket.IO keeps each connection's order). What a "nothing else arrived"
   * check waits on, instead of a sleep.
   */
  delivered(sockets: Socket[]): Promise<void>;
  /**
   * Signs in at /admin as a browser would (a form POST from the page's own origin): the session
   * cookie (for a `cookie` header) and the page's CSRF token; or the status when refused.
   */
  signIn(token?: string): Promise<{ status: number; cookie: string; csrf: string }>;
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
  const {
    app,
    dir,
    env: fullEnv,
  } = await startLocalApp(
    {
      SIMULATOR_LATENCY_MS: '5',
      SIMULATOR_ERROR_RATE: '0',
      ADMIN_TOKEN: TEST_TOKEN,
      LOG_LEVEL: 'silent',
      SHUTDOWN_GRACE_MS: '2000',
      // Many tests on one address present wrong tokens on purpose, or sign in again and again; each
      // limit has a test of its own.
      AUTH_FAILURES_PER_15_MIN: '100000',
      SIGN_INS_PER_15_MIN: '100000',
      // Every socket of every test comes from loopback: the launch-scale tests' tabs and pages, a
      // few dozen at most, against a cap of thousands (the cap has tests of its own, with a small one).
      MAX_SOCKETS_PER_ADDRESS: '5000',
      ...env,
    },
    { logger: options.logger ?? createLogger('silent'), dir: options.dir, start: options.start },
  );
  const flagsFile = fullEnv.FLAGS_FILE!;
  const sockets: Socket[] = [];

  const request: TestApp['request'] = async (pathname, init = {}) => {
    const headers = new Headers(init.headers);
    if (pathname.startsWith('/api') && !headers.has('authorization'))
      headers.set('authorization', `Bearer ${TEST_TOKEN}`);
    const response = await fetch(app.url + pathname, { ...init, headers });
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
    async signIn(token = TEST_TOKEN) {
      const response = await fetch(`${app.url}/admin/sign-in`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: app.url },
        body: new URLSearchParams({ token }),
        redirect: 'manual',
      });
      const cookie = (response.headers.getSetCookie()[0] ?? '').split(';')[0]!;
      await response.body?.cancel();
      if (response.status !== 303) return { status: response.status, cookie: '', csrf: '' };
      const page = await (await fetch(`${app.url}/admin`, { headers: { cookie } })).text();
      const csrf = /<meta name="csrf-token" content="([^"]+)">/.exec(page)?.[1] ?? '';
      return { status: response.status, cookie, csrf };
    },
    async socket(socketOptions = {}) {
      const socket = connect(app.url, {
        transports: ['websocket'],
        reconnection: true,
        reconnectionDelay: 50,
        reconnectionDelayMax: 200,
        extraHeaders: socketOptions.cookie ? { cookie: socketOptions.cookie } : {},
        // An admin socket proves the admin token unless the test says otherwise.
        auth:
          socketOptions.auth?.role === 'admin' && !('token' in socketOptions.auth)
            ? { ...socketOptions.auth, token: TEST_TOKEN }
            : (socketOptions.auth ?? {}),
        forceNew: true,
        autoConnect: false,
      });
      sockets.push(socket);
      const snapshots: Record<string, FlagValue>[] = [];
      socket.on('flag_snapshot', (snapshot) => snapshots.push(snapshot));
      socket.connect();
      const browser = socketOptions.auth?.role !== 'admin';
      await new Promise<void>((resolve, reject) => {
        if (browser) socket.once('flag_snapshot', () => resolve());
        else socket.once('connect', () => resolve());
        socket.once('connect_error', reject);
      });
      return Object.assign(socket, { snapshots });
    },
    async delivered(clients) {
      await app.realtime.pusher.idle();
      const server = app.realtime.io as unknown as { to(id: string): { emit(event: string): void } };
      await Promise.all(
        clients.map(
          (client) =>
            new Promise<void>((resolve, reject) => {
              const late = setTimeout(() => reject(new Error('the delivery marker never arrived')), 5000);
              client.once(DELIVERED, () => {
                clearTimeout(late);
                resolve();
              });
              server.to(client.id!).emit(DELIVERED);
            }),
        ),
      );
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

/** Two instances of the app on one Redis of their own (as in production, behind a load balancer). */
export async function startTwoInstances(
  env: Record<string, string> = {},
): Promise<{ redis: TestRedis; a: TestApp; b: TestApp; stop(): Promise<void> }> {
  const redis = await TestRedis.create();
  const shared = { REDIS_URL: redis.url, REDIS_CONNECT_TIMEOUT_MS: '2000', ...env };
  const [a, b] = await Promise.all([startTestApp(shared), startTestApp(shared)]);
  return {
    redis,
    a,
    b,
    async stop() {
      await Promise.all([a.stop(), b.stop()]);
      await redis.destroy();
    },
  };
}

/** The events the server sends, and what each carries (server/realtime/events.ts): typed on both sides. */
type ServerEvent = keyof ServerToClientEvents | 'connect_error' | 'disconnect';
type PayloadOf<E extends ServerEvent> = E extends keyof ServerToClientEvents
  ? Parameters<ServerToClientEvents[E]>[0]
  : E extends 'connect_error'
    ? Error
    : string;

/** Resolves with the next `event` on `socket`, or rejects after `ms`. */
export function nextEvent<E extends ServerEvent>(socket: Socket, event: E, ms = 5000): Promise<PayloadOf<E>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    socket.once(String(event), (payload: PayloadOf<E>) => {
      clearTimeout(timer);
      resolve(payload);
    });
  });
}

/** Collects every `event` on `socket` from now on. */
export function record<E extends ServerEvent>(socket: Socket, event: E): PayloadOf<E>[] {
  const seen: PayloadOf<E>[] = [];
  socket.on(String(event), (payload: PayloadOf<E>) => seen.push(payload));
  return seen;
}

/** A real logger at `level` whose lines the test can read (for signals the app only logs). */
export function capturingLogger(level: 'trace' | 'debug' | 'info' | 'warn'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: createLogger(level, sink), lines };
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
