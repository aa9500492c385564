import { io as connect } from 'socket.io-client';
import { expect } from 'vitest';
import { TOKEN_IN_TEXT } from '../../server/access/tokens.js';
import { waitFor, type TestApp } from './app.js';
import { runToEnd } from '../../testing/process.js';

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
export const get = (app: TestApp, pathname: string, headers: Record<string, string> = {}) =>
  fetch(`${app.url}${pathname}`, { headers });

/** `npm run token -- ...` against this app's store (its flag folder, or its Redis). */
export async function tokenCli(app: TestApp, ...args: string[]) {
  const env: Record<string, string> = { FLAGS_FILE: app.flagsFile, LOG_LEVEL: 'silent' };
  if (app.env.REDIS_URL) env.REDIS_URL = app.env.REDIS_URL;
  return runToEnd('server/access/cli.ts', args, env);
}

/**
 * Creates a token with the CLI, as a user would, and gives the token it printed once, after the
 * app has seen it (its store watcher reloads a few milliseconds after the CLI exits).
 */
export async function createToken(app: TestApp, name: string, ...flags: string[]): Promise<string> {
  const created = await tokenCli(app, 'create', name, ...flags);
  expect(created.code, created.stderr).toBe(0);
  const token = TOKEN_IN_TEXT.exec(created.stdout)?.[0];
  expect(token).toBeDefined();
  await waitFor(
    async () => (await get(app, '/api/audit?limit=1', bearer(token!))).status === 200,
    10_000,
    `the token ${name} to be known`,
  );
  return token!;
}

/**
 * An admin socket with exactly these credentials (and headers, e.g. X-Forwarded-For): resolves to
 * it, with every admin_state it gets, or to the reason it was refused.
 */
export function adminSocket(
  app: TestApp,
  options: { token?: string; cookie?: string; origin?: string; headers?: Record<string, string> } = {},
) {
  const socket = connect(app.url, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    auth: options.token === undefined ? { role: 'admin' } : { role: 'admin', token: options.token },
    extraHeaders: {
      ...(options.cookie ? { cookie: options.cookie } : {}),
      ...(options.origin ? { origin: options.origin } : {}),
      ...options.headers,
    },
  });
  const states: unknown[] = [];
  socket.on('admin_state', (state) => states.push(state));
  return new Promise<{ socket: typeof socket; states: unknown[] } | { refused: string }>((resolve) => {
    socket.once('connect', () => resolve({ socket, states }));
    socket.once('connect_error', (error) => {
      socket.close();
      resolve({ refused: error.message });
    });
  });
}

/** An admin socket that must open, once it has the admin state (it is in the admin room by then). */
export async function openAdminSocket(app: TestApp, options: Parameters<typeof adminSocket>[1]) {
  const opened = await adminSocket(app, options);
  if ('refused' in opened) throw new Error(`the admin socket was refused: ${opened.refused}`);
  await waitFor(() => opened.states.length > 0, 5000, 'the admin state');
  return opened.socket;
}

/** Signs out at /admin as the page's form does (own origin, the session's CSRF token). */
export async function signOut(app: TestApp, session: { cookie: string; csrf: string }): Promise<number> {
  const response = await fetch(`${app.url}/admin/sign-out`, {
    method: 'POST',
    headers: { cookie: session.cookie, origin: app.url, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf: session.csrf }),
    redirect: 'manual',
  });
  await response.body?.cancel();
  return response.status;
}
