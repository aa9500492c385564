import type { IncomingMessage, ServerResponse } from 'node:http';

export type SimulatorMode = 'normal' | 'fail' | 'hang' | 'garbage' | 'slow' | 'images-down';

export interface SimulatorKnobs {
  /** Typical latency of an API call, in ms; each call varies by +/- half of it. */
  latencyMs: number;
  /** Share of API calls answered with a 503, 0 to 1. */
  errorRate: number;
  mode: SimulatorMode;
}

export const MODES: readonly SimulatorMode[] = ['normal', 'fail', 'hang', 'garbage', 'slow', 'images-down'];

/** `current` with what `next` sets: only the three knobs, each checked; throws saying what is wrong. */
export function mergeKnobs(current: SimulatorKnobs, next: Partial<SimulatorKnobs> | undefined): SimulatorKnobs {
  const { latencyMs = current.latencyMs, errorRate = current.errorRate, mode = current.mode } = next ?? {};
  if (!MODES.includes(mode)) throw new Error(`mode must be one of ${MODES.join(', ')}`);
  if (
    !(typeof latencyMs === 'number' && Number.isFinite(latencyMs) && latencyMs >= 0) ||
    !(typeof errorRate === 'number' && errorRate >= 0 && errorRate <= 1)
  ) {
    throw new Error('latencyMs must be a number >= 0 and errorRate a number between 0 and 1');
  }
  return { latencyMs, errorRate, mode };
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
 * Why a knobs write is refused, or undefined. The knobs can make the third party hang for every
 * app that uses it, so they answer only to this machine (the simulator may listen on a public
 * HOST for its images), never to a page of another site (an Origin or Sec-Fetch-Site not our own
 * is refused, and only JSON, which a form cannot send and a no-cors fetch may not declare), and
 * never read more than a few KB.
 */
function refusalOf(req: IncomingMessage, origin: string): [number, string] | undefined {
  if (!isLoopback(req.socket.remoteAddress)) return [403, 'knobs are set from this machine only'];
  const from = req.headers.origin;
  const site = req.headers['sec-fetch-site'];
  if ((from !== undefined && from !== origin) || (site !== undefined && site !== 'same-origin' && site !== 'none')) {
    return [403, 'cross-site requests may not set knobs'];
  }
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') return [415, 'send the knobs as application/json'];
  if (Number(req.headers['content-length']) > KNOBS_BODY_LIMIT)
    return [413, `a knobs body is at most ${KNOBS_BODY_LIMIT} bytes`];
  return undefined;
}

/**
 * Answers a refused write and closes its connection, reading no more of its body. Node ends a
 * `Connection: close` answer by destroying the socket once written; with a body still arriving
 * that is a TCP reset, which can reach the client before the answer does. So while a body is
 * unread only our half is closed, and the socket is cut LINGER_MS later.
 */
function refuse(req: IncomingMessage, res: ServerResponse, [status, error]: [number, string]): void {
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

/** POST|PUT /_sim/knobs: the knobs a JSON object sets, through `apply`, answered with the knobs now. */
export async function setKnobsOverHttp(
  req: IncomingMessage,
  res: ServerResponse,
  origin: string,
  apply: (next: Partial<SimulatorKnobs>) => SimulatorKnobs,
): Promise<void> {
  const refusal = refusalOf(req, origin);
  if (refusal) return refuse(req, res, refusal);
  // Content-Length may be absent (chunked) or lie: the limit holds while reading, too.
  const body = await readAtMost(req, KNOBS_BODY_LIMIT);
  if (body === undefined) return refuse(req, res, [413, `a knobs body is at most ${KNOBS_BODY_LIMIT} bytes`]);
  const answer = (status: number, value: unknown) =>
    res
      .writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      .end(JSON.stringify(value));
  try {
    const next: unknown = JSON.parse(body.toString('utf8') || '{}');
    if (typeof next !== 'object' || next === null || Array.isArray(next))
      throw new Error('send the knobs as a JSON object');
    answer(200, apply(next));
  } catch (error) {
    answer(400, { error: (error as Error).message });
  }
}
