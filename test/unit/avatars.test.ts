import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../server/observability/logger.js';
import { createMetrics } from '../../server/observability/metrics.js';
import { createAvatarService, FALLBACK_AVATAR } from '../../server/upstream/avatars.js';
import { createUpstreamClient, type UpstreamPolicyOptions } from '../../server/upstream/client.js';
import { waitFor } from '../helpers/app.js';

// The avatar service with a real upstream client, against a third party on loopback that answers
// each person's avatar as the test says.
let server: Server;
let origin: string;
/** The paths asked for, in order. */
let asked: string[];
/** What the third party answers for a path (500: it fails). */
let answer: (path: string) => unknown;

beforeEach(async () => {
  asked = [];
  answer = (path) => ({ url: `${origin}/img${path}.svg` });
  server = createServer((req, res) => {
    asked.push(req.url!);
    const body = answer(req.url!);
    if (body === 500) return void res.writeHead(500).end('{}');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterEach(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const service = (baseUrl: string, options: { ttlMs?: number; policy?: Partial<UpstreamPolicyOptions> } = {}) =>
  createAvatarService({
    baseUrl,
    ttlMs: options.ttlMs,
    logger: createLogger('silent'),
    client: createUpstreamClient({
      service: 'avatars',
      policy: { timeoutMs: 2000, maxConcurrent: 4, ...options.policy },
      metrics: createMetrics({ collectDefaults: false }),
      logger: createLogger('silent'),
    }),
  });

describe('the avatar service', () => {
  it('asks {AVATAR_API_URL}/{person}, the person encoded, however many slashes end the URL', async () => {
    const avatars = service(`${origin}/v1/avatars//`);
    expect(await avatars.avatarFor('maya')).toEqual({ url: `${origin}/img/v1/avatars/maya.svg`, live: true });
    await avatars.avatarFor('a/b?c=d e');
    expect(asked).toEqual(['/v1/avatars/maya', '/v1/avatars/a%2Fb%3Fc%3Dd%20e']);
    // The CSP's image origin: the service's, without its path.
    expect(avatars.imageOrigins).toEqual([origin]);
  });

  it("accepts any image on the service's own origin, however it is written", async () => {
    const avatars = service(`${origin}/avatars`);
    const port = new URL(origin).port;
    const own = [`${origin}/a.png`, `HTTP://127.0.0.1:${port}/b.png?size=48#x`, `${origin}/c/../d.png`];
    answer = (path) => ({ url: own[Number(path.slice('/avatars/p'.length))] });
    for (const [index, url] of own.entries()) expect(await avatars.avatarFor(`p${index}`)).toEqual({ url, live: true });
  });

  it('gives the fallback for an image anywhere else, or an answer that is not one', async () => {
    // Each answer counts against the breaker: kept closed here, so that every one is asked for.
    const avatars = service(`${origin}/avatars`, { policy: { breakerFailures: 1000 } });
    const port = Number(new URL(origin).port);
    const foreign: unknown[] = [
      { url: `${origin}@tracker.example/p.png` },
      { url: `https://127.0.0.1:${port}/p.png` },
      { url: `http://127.0.0.1:${port + 1}/p.png` },
      { url: `http://localhost:${port}/p.png` },
      { url: `ftp://127.0.0.1:${port}/p.png` },
      { url: `javascript:alert(1)//${origin}/` },
      { url: `data:image/svg+xml,<svg xmlns="http://www.w3.org/2000/svg"/>` },
      { url: '/img/relative.png' },
      { url: '' },
      { url: 12 },
      {},
      [],
      null,
      'garbage',
      500,
    ];
    answer = (path) => foreign[Number(path.slice('/avatars/p'.length))];
    for (let index = 0; index < foreign.length; index++) {
      expect(await avatars.avatarFor(`p${index}`), JSON.stringify(foreign[index])).toEqual({
        url: FALLBACK_AVATAR,
        live: false,
        catchUp: false,
      });
    }
    expect(asked).toHaveLength(foreign.length);
    // A fallback is not kept: the next look-up asks again.
    answer = () => ({ url: `${origin}/now-fine.png` });
    expect(await avatars.avatarFor('p0')).toEqual({ url: `${origin}/now-fine.png`, live: true });
    expect(avatars.cached('p1')).toBeUndefined();
  });

  it('keeps an avatar per person: the next look-up and `cached` make no call; look-ups at once share one call', async () => {
    const avatars = service(`${origin}/avatars`);
    expect(avatars.cached('maya')).toBeUndefined();
    const together = await Promise.all([
      avatars.avatarFor('maya'),
      avatars.avatarFor('maya'),
      avatars.avatarFor('theo'),
    ]);
    expect(together.map((avatar) => avatar.url)).toEqual([
      `${origin}/img/avatars/maya.svg`,
      `${origin}/img/avatars/maya.svg`,
      `${origin}/img/avatars/theo.svg`,
    ]);
    expect(asked.sort()).toEqual(['/avatars/maya', '/avatars/theo']);
    expect(await avatars.avatarFor('maya')).toEqual({ url: `${origin}/img/avatars/maya.svg`, live: true });
    expect(avatars.cached('maya')).toEqual({ url: `${origin}/img/avatars/maya.svg`, live: true });
    expect(asked).toHaveLength(2);
  });

  it('keeps it for ttlMs only', async () => {
    const avatars = service(`${origin}/avatars`, { ttlMs: 50 });
    await avatars.avatarFor('maya');
    expect(avatars.cached('maya')).toBeDefined();
    await waitFor(() => avatars.cached('maya') === undefined, 5000, 'the avatar to expire');
    await avatars.avatarFor('maya');
    expect(asked).toEqual(['/avatars/maya', '/avatars/maya']);
  });

  it('gives the fallback as a catch-up when the service is at our capacity: worth asking again soon', async () => {
    const avatars = service(`${origin}/avatars`, { policy: { maxConcurrent: 1, maxQueued: 0 } });
    // One call in flight, answered only when released: the one slot is taken.
    let release: () => void = () => undefined;
    const answered = new Promise<void>((resolve) => (release = resolve));
    server.removeAllListeners('request');
    server.on('request', (req, res) => {
      asked.push(req.url!);
      void answered.then(() =>
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: `${origin}/slow.png` })),
      );
    });
    const first = avatars.avatarFor('maya');
    await waitFor(() => asked.length === 1, 5000, 'the first call');
    expect(await avatars.avatarFor('theo')).toEqual({ url: FALLBACK_AVATAR, live: false, catchUp: true });
    release();
    expect(await first).toEqual({ url: `${origin}/slow.png`, live: true });
  });
});
