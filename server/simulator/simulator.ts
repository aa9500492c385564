import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { identiconSvg, recommendationsFor } from './content.js';
import { mergeKnobs, setKnobsOverHttp, type SimulatorKnobs } from './knobs.js';
import { TrafficCounter, type SimulatorStats } from './traffic.js';

export type { SimulatorKnobs, SimulatorMode } from './knobs.js';
export type { SimulatorStats } from './traffic.js';

/**
 * A stand-in for the third party (what The Cat API is in the original tutorial): its own HTTP
 * server on its own port, real HTTP, with knobs for latency, error rate and a few ways of
 * misbehaving. It serves avatars (a JSON document pointing at a generated SVG, stable per
 * person) and personalized recommendations (JSON per viewer), and counts every request it gets.
 */
export interface Simulator {
  readonly origin: string;
  readonly avatarApiUrl: string;
  readonly recommendationsApiUrl: string;
  knobs(): SimulatorKnobs;
  setKnobs(knobs: Partial<SimulatorKnobs>): SimulatorKnobs;
  stats(): SimulatorStats;
  resetStats(): void;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, type: string, body: string) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
}

/** The answers of an API call as the knobs make them: late, failing, hanging, or garbled. */
class Misbehaviour {
  private readonly pending = new Set<NodeJS.Timeout>();

  constructor(readonly knobs: () => SimulatorKnobs) {}

  async answer(res: ServerResponse, body: () => unknown): Promise<void> {
    const { mode, latencyMs, errorRate } = this.knobs();
    if (mode === 'hang') return; // never answers; the connection stays open until the caller gives up
    await this.delay((mode === 'slow' ? latencyMs * 10 + 2000 : latencyMs) * (0.5 + Math.random()));
    if (res.destroyed) return;
    if (mode === 'fail' || Math.random() < errorRate)
      return send(res, 503, 'application/json', JSON.stringify({ error: 'upstream overloaded' }));
    if (mode === 'garbage') {
      const garbled =
        Math.random() < 0.5 ? '{"items": [ {"title": ' : JSON.stringify({ surprise: true, url: 'javascript:alert(1)' });
      return send(res, 200, 'application/json', garbled);
    }
    send(res, 200, 'application/json', JSON.stringify(body()));
  }

  cancelAll(): void {
    for (const timer of this.pending) clearTimeout(timer);
  }

  private delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(timer);
        resolve();
      }, ms);
      this.pending.add(timer);
    });
  }
}

/** The simulator's routes: the two APIs, the avatar images, its counters and its knobs. */
function route(
  req: IncomingMessage,
  res: ServerResponse,
  origin: string,
  parts: { api: Misbehaviour; traffic: TrafficCounter; setKnobs: Simulator['setKnobs'] },
) {
  const url = new URL(req.url ?? '/', origin);
  const image = url.pathname.match(/^\/v1\/avatars\/([^/]+)\.svg$/);
  const avatar = url.pathname.match(/^\/v1\/avatars\/([^/]+)$/);
  if (req.method === 'GET' && image) {
    // The image host unreachable while the API answers: the connection is cut, as by a dead host.
    if (parts.api.knobs().mode === 'images-down') return void req.socket.destroy();
    return send(res, 200, 'image/svg+xml', identiconSvg(decodeURIComponent(image[1]!)));
  }
  if (req.method === 'GET' && avatar) {
    const key = decodeURIComponent(avatar[1]!);
    return parts.api.answer(res, () => ({ id: key, url: `${origin}/v1/avatars/${encodeURIComponent(key)}.svg` }));
  }
  if (req.method === 'GET' && url.pathname === '/v1/recommendations') {
    const user = url.searchParams.get('user') ?? 'anonymous';
    const groups = (url.searchParams.get('groups') ?? '').split(',').filter(Boolean);
    const flavour = url.searchParams.get('flavour') ?? 'classic';
    return parts.api.answer(res, () => ({ user, flavour, items: recommendationsFor(user, groups, flavour) }));
  }
  if (req.method === 'GET' && url.pathname === '/_sim')
    return send(
      res,
      200,
      'application/json',
      JSON.stringify({ knobs: parts.api.knobs(), stats: parts.traffic.snapshot() }),
    );
  if (url.pathname === '/_sim/knobs' && (req.method === 'POST' || req.method === 'PUT'))
    return setKnobsOverHttp(req, res, origin, parts.setKnobs);
  send(res, 404, 'application/json', JSON.stringify({ error: 'not found' }));
}

export async function startSimulator(options: {
  port?: number;
  host?: string;
  knobs?: Partial<SimulatorKnobs>;
}): Promise<Simulator> {
  let knobs: SimulatorKnobs = mergeKnobs({ latencyMs: 120, errorRate: 0, mode: 'normal' }, options.knobs);
  const setKnobs = (next: Partial<SimulatorKnobs>) => (knobs = mergeKnobs(knobs, next));
  const traffic = new TrafficCounter();
  const api = new Misbehaviour(() => knobs);
  let origin = '';
  const server = createServer((req, res) => {
    traffic.arrived(req, res);
    Promise.resolve(route(req, res, origin, { api, traffic, setKnobs })).catch(() => {
      if (!res.headersSent) send(res, 500, 'application/json', '{"error":"simulator failure"}');
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  origin = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  return {
    origin,
    avatarApiUrl: `${origin}/v1/avatars`,
    recommendationsApiUrl: `${origin}/v1/recommendations`,
    knobs: () => knobs,
    setKnobs,
    stats: () => traffic.snapshot(),
    resetStats: () => traffic.reset(),
    close: () =>
      new Promise<void>((resolve) => {
        api.cancelAll();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
