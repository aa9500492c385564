import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../server/observability/logger.js';
import { createMetrics } from '../../server/observability/metrics.js';
import { CallSkippedError, catchesUp, createUpstreamClient, LateError, type UpstreamPolicyOptions } from '../../server/upstream/client.js';

/** A third party on loopback that answers 500 while `failing`, else `{ ok: true }` after `delayMs`. */
let server: Server;
let url: string;
let failing = false;
let delayMs = 0;
let requests = 0;
let inFlight = 0;
let peakInFlight = 0;
/** Called as each request reaches the third party. */
let onRequest: () => void = () => undefined;

beforeEach(async () => {
  failing = false;
  delayMs = 0;
  requests = 0;
  inFlight = 0;
  peakInFlight = 0;
  onRequest = () => undefined;
  server = createServer((_req, res) => {
    requests++;
    onRequest();
    peakInFlight = Math.max(peakInFlight, ++inFlight);
    const done = () => inFlight--;
    res.on('close', done);
    setTimeout(() => {
      if (failing) res.writeHead(500).end('{}');
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    }, delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterEach(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const client = (policy: Partial<UpstreamPolicyOptions> = {}) =>
  createUpstreamClient({
    service: 'avatars',
    policy: { timeoutMs: 500, maxConcurrent: 4, ...policy },
    metrics: createMetrics({ collectDefaults: false }),
    logger: createLogger('silent'),
  });
const parse = (body: unknown) => body as { ok: boolean };

describe('the circuit breaker', () => {
  it('opens at exactly `breakerFailures` consecutive failures, and a success in between resets the count', async () => {
    const upstream = client({ breakerFailures: 3, breakerHalfOpenAfterMs: 60_000 });
    failing = true;
    for (let i = 0; i < 2; i++) await expect(upstream.getJson(url, parse)).rejects.toThrow();
    failing = false;
    await upstream.getJson(url, parse); // resets
    failing = true;
    for (let i = 0; i < 2; i++) await expect(upstream.getJson(url, parse)).rejects.toThrow();
    expect(upstream.breakerState()).toBe('closed');
    await expect(upstream.getJson(url, parse)).rejects.toThrow();
    expect(upstream.breakerState()).toBe('open');
    // Open: the call is not made at all.
    const before = requests;
    await expect(upstream.getJson(url, parse)).rejects.toThrow(CallSkippedError);
    expect(requests).toBe(before);
  });

  it('lets one trial call through after `breakerHalfOpenAfterMs`, and closes when it succeeds', async () => {
    const upstream = client({ breakerFailures: 2, breakerHalfOpenAfterMs: 150 });
    failing = true;
    for (let i = 0; i < 2; i++) await expect(upstream.getJson(url, parse)).rejects.toThrow();
    expect(upstream.breakerState()).toBe('open');
    failing = false;
    await expect(upstream.getJson(url, parse)).rejects.toThrow(CallSkippedError);
    expect(upstream.breakerState()).toBe('open');
    await new Promise((resolve) => setTimeout(resolve, 160)); // the half-open time passing is the point
    const before = requests;
    expect(await upstream.getJson(url, parse)).toEqual({ ok: true });
    expect(requests).toBe(before + 1);
    expect(upstream.breakerState()).toBe('closed');
  });
});

describe('the bulkhead and the timeouts', () => {
  it('never has more than `maxConcurrent` calls in flight, calls it gave up on included', async () => {
    const upstream = client({ maxConcurrent: 2, timeoutMs: 100, breakerFailures: 1000 });
    delayMs = 300; // every call passes its timeout; the third party keeps working on it
    const calls = Array.from({ length: 8 }, () => upstream.getJson(url, parse).catch((error: unknown) => error));
    // Every call settles: none waits forever for a slot (cockatiel's own queue, given an aborted
    // signal, stalled every task queued behind the first one given up on).
    const outcomes = await Promise.all(calls);
    expect(peakInFlight).toBe(2);
    expect(outcomes.every((outcome) => outcome instanceof Error)).toBe(true);
  });

  it('a page stops waiting after one timeout (a LateError, worth catching up), while the call goes on', async () => {
    // A timeout far above a loopback answer's time: on a busy machine (CI runs two suites' worth of
    // work on two cores) a 60 ms answer under a 100 ms timeout was once cut, and failed this test.
    const upstream = client({ timeoutMs: 1000 });
    const call = upstream.getJson(url, parse);
    const outcome = call.then((value) => value, (error: unknown) => error); // never unhandled
    const slow = new Promise<never>(() => undefined);
    await expect(upstream.within(slow)).rejects.toThrow(LateError);
    expect(catchesUp(new LateError(1000))).toBe(true);
    // The page that gave up did not cancel the call: it answered by itself.
    expect(await outcome).toEqual({ ok: true });
    expect(await upstream.within(call)).toEqual({ ok: true });
  });

  it('a call still queued when it is no longer wanted (a kill for everyone) is never made; the one in flight goes on', async () => {
    let wanted = true;
    const metrics = createMetrics({ collectDefaults: false });
    const upstream = createUpstreamClient({
      service: 'avatars',
      policy: { timeoutMs: 2000, maxConcurrent: 1 },
      metrics,
      logger: createLogger('silent'),
      stillWanted: () => wanted,
    });
    delayMs = 100;
    const first = new Promise<void>((resolve) => (onRequest = resolve));
    const calls = Array.from({ length: 3 }, () => upstream.getJson(url, parse).catch((error: unknown) => error));
    await first; // one call made, two waiting for its slot
    wanted = false; // the kill lands
    const [made, ...queued] = await Promise.all(calls);
    expect(made).toEqual({ ok: true });
    expect(queued).toEqual([expect.objectContaining({ reason: 'killed' }), expect.objectContaining({ reason: 'killed' })]);
    expect(queued.map(catchesUp)).toEqual([false, false]); // nothing to catch up: the page is killed
    expect(requests).toBe(1);
    const skipped = (await metrics.upstreamSkipped.get()).values.find((v) => v.labels.reason === 'killed');
    expect(skipped?.value).toBe(2);
    // Restored: calls are made again.
    wanted = true;
    expect(await upstream.getJson(url, parse)).toEqual({ ok: true });
    expect(requests).toBe(2);
  });

  it('a failure of the third party is not worth catching up; our own saturation is', async () => {
    expect(catchesUp(new CallSkippedError('over_capacity'))).toBe(true);
    expect(catchesUp(new CallSkippedError('breaker_open'))).toBe(false);
    expect(catchesUp(new Error('500'))).toBe(false);
  });
});
