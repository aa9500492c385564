import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for the third party (what The Cat API is in the original tutorial): its own HTTP
 * server on its own port, real HTTP, with knobs for latency, error rate and a few ways of
 * misbehaving. It serves avatars (a JSON document pointing at a generated SVG, stable per
 * person) and personalized recommendations (JSON per viewer), and counts every request it gets,
 * which is how the tests prove that a killed feed makes no third-party call at all.
 */
export type SimulatorMode = 'normal' | 'fail' | 'hang' | 'garbage' | 'slow';

export interface SimulatorKnobs {
  /** Typical latency of an API call, in ms; each call varies by +/- half of it. */
  latencyMs: number;
  /** Share of API calls answered with a 503, 0 to 1. */
  errorRate: number;
  mode: SimulatorMode;
}

type Route = 'avatars' | 'recommendations' | 'images' | 'other';

export interface SimulatorStats {
  requests: Record<Route, number>;
  total: number;
  inFlight: number;
  peakInFlight: number;
  /** Per service, from the moment a request arrives until its connection is done with it. */
  inFlightBy: Record<Route, number>;
  peakInFlightBy: Record<Route, number>;
}

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

const MODES: SimulatorMode[] = ['normal', 'fail', 'hang', 'garbage', 'slow'];

const CATALOG = [
  { id: 'r1', kind: 'community', title: 'Incident commanders club', blurb: 'Runbooks, war stories and calm voices.', for: ['staff'] },
  { id: 'r2', kind: 'event', title: 'Chaos engineering night', blurb: 'Break things on purpose, with pizza.', for: ['staff'] },
  { id: 'r3', kind: 'beta', title: 'Try the new composer', blurb: 'Drafts, scheduling and a calmer editor.', for: ['beta'] },
  { id: 'r4', kind: 'beta', title: 'Voice notes (early access)', blurb: 'Say it instead of typing it.', for: ['beta'] },
  { id: 'r5', kind: 'topic', title: 'Street photography', blurb: 'Candid frames from cities everywhere.', for: [] },
  { id: 'r6', kind: 'topic', title: 'Bread & fermentation', blurb: 'Starters, crumb shots and flour talk.', for: [] },
  { id: 'r7', kind: 'person', title: 'Follow Lena Costa', blurb: 'Hosts the best meetups in town.', for: [] },
  { id: 'r8', kind: 'person', title: 'Follow Jonas Weber', blurb: 'Doors, fog and quiet mornings.', for: [] },
  { id: 'r9', kind: 'topic', title: 'Mobile dev corner', blurb: 'Offline-first, battery-kind apps.', for: [] },
  { id: 'r10', kind: 'event', title: 'Sunday market walk', blurb: 'Meet neighbours, buy too many tomatoes.', for: [] },
  { id: 'r11', kind: 'topic', title: 'Product thinking', blurb: 'Small bets, fast feedback, honest metrics.', for: [] },
  { id: 'r12', kind: 'community', title: 'Night owls', blurb: 'For everyone awake when the servers are quiet.', for: [] },
];

function hashOf(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** A symmetric 5x5 identicon, coloured from the person's key: stable, and never the same twice. */
export function identiconSvg(key: string): string {
  const bytes = hashOf(key);
  const hue = Math.round((bytes[0]! / 255) * 360);
  const fg = `hsl(${hue} 62% 46%)`;
  const bg = `hsl(${(hue + 180) % 360} 45% 94%)`;
  const cells: string[] = [];
  for (let row = 0; row < 5; row++) {
    for (let col = 0; col < 3; col++) {
      if (bytes[1 + row * 3 + col]! % 2 === 0) continue;
      for (const x of new Set([col, 4 - col])) {
        cells.push(`<rect x="${10 + x * 16}" y="${10 + row * 16}" width="16" height="16" rx="3"/>`);
      }
    }
  }
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100" width="96" height="96">` +
    `<rect width="100" height="100" fill="${bg}"/><g fill="${fg}">${cells.join('')}</g></svg>`
  );
}

/**
 * Recommendations for one viewer, in one flavour: "classic" puts group-specific items first, then
 * a stable pick of the rest; "trending" ranks events and topics by a shared score; "friends"
 * prefers people to follow and communities.
 */
export function recommendationsFor(user: string, groups: string[], flavour = 'classic') {
  const seed = hashOf(user);
  const targeted = CATALOG.filter((item) => item.for.some((group) => groups.includes(group)));
  const general = CATALOG.filter((item) => item.for.length === 0).sort(
    (a, b) => hashOf(user + a.id)[0]! - hashOf(user + b.id)[0]!,
  );
  let picked = [...targeted, ...general];
  if (flavour === 'trending') {
    picked = CATALOG.filter((item) => item.kind === 'event' || item.kind === 'topic').sort(
      (a, b) => hashOf(`trend-${a.id}`)[0]! - hashOf(`trend-${b.id}`)[0]!,
    );
  } else if (flavour === 'friends') {
    picked = [...CATALOG.filter((item) => item.kind === 'person' || item.kind === 'community'), ...picked];
    picked = picked.filter((item, index) => picked.indexOf(item) === index);
  }
  const reasonFor = (kind: string, index: number) => {
    if (flavour === 'trending') return `Trending #${index + 1} today`;
    if (flavour === 'friends' && (kind === 'person' || kind === 'community')) return 'Popular with people you follow';
    return kind === 'beta' ? 'Because you are in the beta' : `Picked for you (#${(seed[index]! % 9) + 1})`;
  };
  return picked.slice(0, 4).map(({ for: _for, ...item }, index) => ({ ...item, reason: reasonFor(item.kind, index) }));
}

function send(res: ServerResponse, status: number, type: string, body: string) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
}

/** The most a knobs body may weigh: all three knobs together take about 50 bytes. */
export const KNOBS_BODY_LIMIT = 4096;
/** How long a refused request's connection stays half-open for its client to read the answer. */
const LINGER_MS = 2000;

/** 127.0.0.0/8 and ::1, also as a dual-stack socket reports IPv4 (::ffff:127.0.0.1). */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === '::1' || /^(?:::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/i.test(address);
}

/**
 * Reads a request body of at most `limit` bytes. Past the limit it stops reading at once (the
 * request is paused and what was read is dropped) and resolves undefined, so that a huge body
 * costs the limit in memory, not its size.
 */
function readAtMost(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] = [];
    let size = 0;
    const done = () => req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      done();
      req.pause();
      chunks = [];
      resolve(undefined);
    };
    const onEnd = () => {
      done();
      resolve(Buffer.concat(chunks));
    };
    const onError = (error: Error) => {
      done();
      reject(error);
    };
    const onClose = () => onError(new Error('the request ended before its body'));
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

export async function startSimulator(options: {
  port?: number;
  host?: string;
  knobs?: Partial<SimulatorKnobs>;
}): Promise<Simulator> {
  let knobs: SimulatorKnobs = { latencyMs: 120, errorRate: 0, mode: 'normal', ...options.knobs };
  const zero = () => ({ avatars: 0, recommendations: 0, images: 0, other: 0 });
  const fresh = (): SimulatorStats => ({ requests: zero(), total: 0, inFlight: 0, peakInFlight: 0, inFlightBy: zero(), peakInFlightBy: zero() });
  let stats = fresh();
  const pending = new Set<NodeJS.Timeout>();

  const delay = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        pending.delete(timer);
        resolve();
      }, ms);
      pending.add(timer);
    });

  const setKnobs = (next: Partial<SimulatorKnobs>): SimulatorKnobs => {
    // Only the three knobs, whatever else a JSON body carries: nothing unknown lands in `knobs`.
    const { latencyMs = knobs.latencyMs, errorRate = knobs.errorRate, mode = knobs.mode } = next ?? {};
    if (!MODES.includes(mode)) throw new Error(`mode must be one of ${MODES.join(', ')}`);
    if (!(typeof latencyMs === 'number' && Number.isFinite(latencyMs) && latencyMs >= 0) || !(typeof errorRate === 'number' && errorRate >= 0 && errorRate <= 1)) {
      throw new Error('latencyMs must be a number >= 0 and errorRate a number between 0 and 1');
    }
    knobs = { latencyMs, errorRate, mode };
    return knobs;
  };

  /**
   * Why a knobs write is refused, or undefined. The knobs can make the third party hang for every
   * app that uses it, so they answer only to this machine (the simulator may listen on a public
   * HOST for its images), never to a page of another site (no form post, no no-cors fetch: an
   * Origin or Sec-Fetch-Site not our own is refused, and only JSON, which a form cannot send
   * and a no-cors fetch may not declare), and never read more than a few KB.
   */
  const knobsRefusal = (req: IncomingMessage, origin: string): [number, string] | undefined => {
    if (!isLoopback(req.socket.remoteAddress)) return [403, 'knobs are set from this machine only'];
    const from = req.headers.origin;
    const site = req.headers['sec-fetch-site'];
    if ((from !== undefined && from !== origin) || (site !== undefined && site !== 'same-origin' && site !== 'none')) {
      return [403, 'cross-site requests may not set knobs'];
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') return [415, 'send the knobs as application/json'];
    if (Number(req.headers['content-length']) > KNOBS_BODY_LIMIT) return [413, `a knobs body is at most ${KNOBS_BODY_LIMIT} bytes`];
    return undefined;
  };

  /**
   * Answers a refused write and closes its connection, reading no more of its body. Node ends a
   * `Connection: close` answer by destroying the socket once the answer is written; with a body
   * still arriving that is a TCP reset, which can reach the client before the answer does (it
   * sees EPIPE, never the 413). So while a body is unread we close only our half, and cut the
   * socket LINGER_MS later: the client has the answer by then, and the paused socket reads
   * nothing meanwhile.
   */
  const refuse = (req: IncomingMessage, res: ServerResponse, [status, error]: [number, string]) => {
    req.pause();
    if (!req.complete) {
      const { socket } = req;
      socket.destroySoon = () => socket.end();
      res.once('finish', () => {
        const cut = setTimeout(() => socket.destroy(), LINGER_MS).unref();
        socket.once('close', () => clearTimeout(cut));
      });
    }
    res
      .writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', connection: 'close' })
      .end(JSON.stringify({ error }));
  };

  /** An API call: latency, then misbehaviour by the knobs, then the real answer. */
  const apiCall = async (res: ServerResponse, answer: () => unknown) => {
    const { mode, latencyMs, errorRate } = knobs;
    if (mode === 'hang') return; // never answers; the connection stays open until the caller gives up
    const base = mode === 'slow' ? latencyMs * 10 + 2000 : latencyMs;
    await delay(base * (0.5 + Math.random()));
    if (res.destroyed) return;
    if (mode === 'fail' || Math.random() < errorRate) {
      return send(res, 503, 'application/json', JSON.stringify({ error: 'upstream overloaded' }));
    }
    if (mode === 'garbage') {
      return Math.random() < 0.5
        ? send(res, 200, 'application/json', '{"items": [ {"title": ')
        : send(res, 200, 'application/json', JSON.stringify({ surprise: true, url: 'javascript:alert(1)' }));
    }
    send(res, 200, 'application/json', JSON.stringify(answer()));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, origin: string) => {
    const url = new URL(req.url ?? '/', origin);
    const image = url.pathname.match(/^\/v1\/avatars\/([^/]+)\.svg$/);
    const avatar = url.pathname.match(/^\/v1\/avatars\/([^/]+)$/);
    if (req.method === 'GET' && image) {
      stats.requests.images++;
      return send(res, 200, 'image/svg+xml', identiconSvg(decodeURIComponent(image[1]!)));
    }
    if (req.method === 'GET' && avatar) {
      stats.requests.avatars++;
      const key = decodeURIComponent(avatar[1]!);
      return apiCall(res, () => ({ id: key, url: `${origin}/v1/avatars/${encodeURIComponent(key)}.svg` }));
    }
    if (req.method === 'GET' && url.pathname === '/v1/recommendations') {
      stats.requests.recommendations++;
      const user = url.searchParams.get('user') ?? 'anonymous';
      const groups = (url.searchParams.get('groups') ?? '').split(',').filter(Boolean);
      const flavour = url.searchParams.get('flavour') ?? 'classic';
      return apiCall(res, () => ({ user, flavour, items: recommendationsFor(user, groups, flavour) }));
    }
    stats.requests.other++;
    if (url.pathname === '/_sim' && req.method === 'GET') {
      return send(res, 200, 'application/json', JSON.stringify({ knobs, stats }));
    }
    if (url.pathname === '/_sim/knobs' && (req.method === 'POST' || req.method === 'PUT')) {
      const refusal = knobsRefusal(req, origin);
      if (refusal) return refuse(req, res, refusal);
      // Content-Length may be absent (chunked) or lie: the limit holds while reading, too.
      const body = await readAtMost(req, KNOBS_BODY_LIMIT);
      if (body === undefined) return refuse(req, res, [413, `a knobs body is at most ${KNOBS_BODY_LIMIT} bytes`]);
      try {
        const next: unknown = JSON.parse(body.toString('utf8') || '{}');
        if (typeof next !== 'object' || next === null || Array.isArray(next)) throw new Error('send the knobs as a JSON object');
        return send(res, 200, 'application/json', JSON.stringify(setKnobs(next)));
      } catch (error) {
        return send(res, 400, 'application/json', JSON.stringify({ error: (error as Error).message }));
      }
    }
    send(res, 404, 'application/json', JSON.stringify({ error: 'not found' }));
  };

  let origin = '';
  const routeOf = (url: string | undefined): Route => {
    const path = (url ?? '').split('?')[0]!;
    if (path.startsWith('/v1/recommendations')) return 'recommendations';
    if (/^\/v1\/avatars\/[^/]+\.svg$/.test(path)) return 'images';
    return path.startsWith('/v1/avatars/') ? 'avatars' : 'other';
  };
  const server = createServer((req, res) => {
    const route = routeOf(req.url);
    stats.total++;
    stats.inFlight++;
    stats.peakInFlight = Math.max(stats.peakInFlight, stats.inFlight);
    stats.inFlightBy[route]++;
    stats.peakInFlightBy[route] = Math.max(stats.peakInFlightBy[route], stats.inFlightBy[route]);
    // 'close' fires once whether the answer went out or the caller gave up. Counted on the stats
    // of the moment: a reset in between keeps what is still in flight.
    res.on('close', () => {
      stats.inFlight--;
      stats.inFlightBy[route]--;
    });
    handle(req, res, origin).catch(() => {
      if (!res.headersSent) send(res, 500, 'application/json', '{"error":"simulator failure"}');
    });
  });
  server.keepAliveTimeout = 5000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  origin = `http://${host}:${address.port}`;

  return {
    origin,
    avatarApiUrl: `${origin}/v1/avatars`,
    recommendationsApiUrl: `${origin}/v1/recommendations`,
    knobs: () => knobs,
    setKnobs,
    stats: () => structuredClone(stats),
    resetStats: () => {
      const { inFlight, inFlightBy } = stats;
      stats = { ...fresh(), inFlight, inFlightBy, peakInFlight: inFlight, peakInFlightBy: { ...inFlightBy } };
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of pending) clearTimeout(timer);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
