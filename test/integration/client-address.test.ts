import { io as connect, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminSocket, get } from '../helpers/access.js';
import { startTestApp, TEST_TOKEN, waitFor, type TestApp } from '../helpers/app.js';

/** A feed page's socket with these headers: resolves once it has its snapshot (counted among the browsers), or to why it was refused. */
function pageSocket(app: TestApp, headers: Record<string, string> = {}) {
  const socket = connect(app.url, { transports: ['websocket'], forceNew: true, reconnection: false, extraHeaders: headers });
  return new Promise<{ socket: Socket } | { refused: string; reason: unknown }>((resolve) => {
    socket.once('flag_snapshot', () => resolve({ socket }));
    socket.once('connect_error', (error: Error & { data?: { reason?: unknown } }) => {
      socket.close();
      resolve({ refused: error.message, reason: error.data?.reason });
    });
  });
}

async function openPageSocket(app: TestApp, headers: Record<string, string> = {}): Promise<Socket> {
  const opened = await pageSocket(app, headers);
  if ('refused' in opened) throw new Error(`the page's socket was refused: ${opened.refused}`);
  return opened.socket;
}

const TOO_MANY = (cap: number) => ({ refused: `Too many connections from this address (${cap} at most): close some tabs, or try again later.`, reason: 'too_many_connections' });

/** "Browsers watching" as the launch-control page shows it. */
async function browsersOnAdmin(app: TestApp, cookie: string): Promise<number> {
  const page = await (await get(app, '/admin', { cookie })).text();
  return Number(/id="browsers">(\d+)</.exec(page)?.[1]);
}

describe('sockets per address', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ MAX_SOCKETS_PER_ADDRESS: '3' });
  });
  afterAll(() => app.stop());

  it('a cap of 3: three connect, the fourth is refused with the reason and not counted; closing one lets another in', async () => {
    const { cookie } = await app.signIn();
    const open = [await openPageSocket(app), await openPageSocket(app), await openPageSocket(app)];
    expect(await pageSocket(app)).toEqual(TOO_MANY(3));
    // An admin page's socket is a connection like any other.
    expect(await adminSocket(app, { token: TEST_TOKEN })).toEqual({ refused: TOO_MANY(3).refused });
    expect(await browsersOnAdmin(app, cookie)).toBe(3);

    open.shift()!.close();
    await waitFor(async () => (await browsersOnAdmin(app, cookie)) === 2, 5000, 'the closed socket to leave');
    open.push(await openPageSocket(app));
    expect(await browsersOnAdmin(app, cookie)).toBe(3);
    expect(await pageSocket(app)).toEqual(TOO_MANY(3));
    for (const socket of open) socket.close();
  });
});
