import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import axios from 'axios';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../server/observability/logger.js';
import { createMetrics } from '../../server/observability/metrics.js';
import {
  CallSkippedError,
  catchesUp,
  createUpstreamClient,
  InvalidResponseError,
  LateError,
  OwnStallError,
  type UpstreamPolicyOptions,
} from '../../server/upstream/client.js';
import type { LoopStalls } from '../../server/upstream/loop-stalls.js';

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
/** When set, answers each request in place of the default answer (after `delayMs`). */
let answer: ((res: ServerResponse) => void) | undefined;

beforeEach(async () => {
  failing = false;
  delayMs = 0;
  requests = 0;
  inFlight = 0;
  peakInFlight = 0;
  onRequest = () => undefined;
  answer = undefined;
  server = createServer((_req, res) => {
    requests++;
    onRequest();
    peakInFlight = Math.max(peakInFlight, ++inFlight);
    const done = () => inFlight--;
    res.on('close', done);
    setTimeout(() => {
      if (answer) answer(res);
      else if (failing) res.writeHead(500).end('{}');
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

const client = (
  policy: Partial<UpstreamPolicyOptions> = {},
  options: {
    metrics?: ReturnType<typeof createMetrics>;
    stalls?: LoopStalls;
    stillWanted?: () => Promise<boolean>;
  } = {},
) =>
  createUpstreamClient({
    service: 'avatars',
    policy: { timeoutMs: 500, maxConcurrent: 4, ...policy },
    metrics: options.metrics ?? createMetrics({ collectDefaults: false }),
    logger: createLogger('silent'),
    ...(options.stalls ? { stalls: options.stalls } : {}),
    ...(options.stillWanted ? { stillWanted: options.stillWanted } : {}),
  });
/** A counter's values by label, e.g. { ok: 2, timeout: 1 }. */
async function counts(
  counter: { get(): Promise<{ values: { labels: Record<string, unknown>; value: number }[] }> },
  label: string,
) {
  const out: Record<string, number> = {};
  for (const { labels, value } of (await counter.get()).values) if (value > 0) out[String(labels[label])] = value;
  return out;
}
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
    // Open: the call is not made at all, and is counted as skipped for that reason.
    const before = requests;
    const refused = await upstream.getJson(url, parse).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CallSkippedError);
    expect((refused as CallSkippedError).reason).toBe('breaker_open');
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
    const outcome = call.then(
      (value) => value,
      (error: unknown) => error,
    ); // never unhandled
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
    expect(queued).toEqual([
      expect.objectContaining({ reason: 'killed' }),
      expect.objectContaining({ reason: 'killed' }),
    ]);
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
    expect(catchesUp(new CallSkippedError('killed'))).toBe(false);
    expect(catchesUp(new CallSkippedError('breaker_open'))).toBe(false);
    expect(catchesUp(new Error('500'))).toBe(false);
  });
});

describe('what each call counts and measures', () => {
  it('counts every call made by outcome (ok, error, timeout, invalid), and skipped ones apart', async () => {
    const metrics = createMetrics({ collectDefaults: false });
    const upstream = client({ timeoutMs: 200, breakerFailures: 1000 }, { metrics });
    expect(await upstream.getJson(url, parse)).toEqual({ ok: true });
    failing = true;
    await expect(upstream.getJson(url, parse)).rejects.toThrow();
    failing = false;
    await expect(
      upstream.getJson(url, () => {
        throw new Error('no avatar field');
      }),
    ).rejects.toThrow(InvalidResponseError);
    await expect(
      upstream.getJson(url, () => {
        throw new Error('no avatar field');
      }),
    ).rejects.toThrow(/avatars sent an unexpected body: no avatar field/);
    delayMs = 1000;
    await expect(upstream.getJson(url, parse)).rejects.toThrow();
    expect(await counts(metrics.upstreamRequests, 'outcome')).toEqual({ ok: 1, error: 1, invalid: 2, timeout: 1 });
    // Each call's duration, by service and outcome.
    const durations = (await metrics.upstreamDuration.get()).values.filter(
      (v) => v.metricName === 'upstream_request_duration_seconds_count' && v.value > 0,
    );
    expect(durations.map((v) => [v.labels.service, v.labels.outcome, v.value]).sort()).toEqual([
      ['avatars', 'error', 1],
      ['avatars', 'invalid', 2],
      ['avatars', 'ok', 1],
      ['avatars', 'timeout', 1],
    ]);
    expect(await counts(metrics.upstreamSkipped, 'reason')).toEqual({});
    expect(requests).toBe(5);
  });

  it('guesses a quarter of the timeout before its first call, then follows the measured durations', async () => {
    const upstream = client({ timeoutMs: 2000 });
    expect(upstream.latencyMs()).toBe(500);
    expect(upstream.capacity).toBe(4);
    delayMs = 100;
    await upstream.getJson(url, parse);
    const first = upstream.latencyMs();
    expect(first).toBeGreaterThanOrEqual(95);
    expect(first).toBeLessThan(500);
    // A moving average: one fast call moves it a fifth of the way, not all the way.
    delayMs = 0;
    await upstream.getJson(url, parse);
    const second = upstream.latencyMs();
    expect(second).toBeLessThan(first);
    expect(second).toBeGreaterThan(first * 0.7);
    // And one slow call a fifth of the way up: 0.8 x ~80 ms + 0.2 x ~400 ms.
    delayMs = 400;
    await upstream.getJson(url, parse);
    expect(upstream.latencyMs()).toBeGreaterThanOrEqual(second * 0.8 + 400 * 0.2);
    expect(upstream.latencyMs()).toBeLessThan(second * 0.8 + 1000 * 0.2);
  });

  it('follows no redirect, and refuses a body over 256 KB', async () => {
    // A timeout roomy enough for 300 KB on a machine busy with a browser test: the refusal must be the size's.
    const upstream = client({ breakerFailures: 1000, timeoutMs: 5000 });
    let redirected = 0;
    answer = (res) => res.writeHead(302, { location: `${url}elsewhere` }).end();
    onRequest = () => redirected++;
    await expect(upstream.getJson(url, parse)).rejects.toThrow();
    expect(redirected).toBe(1);
    answer = (res) =>
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ ok: true, pad: 'x'.repeat(300 * 1024) }));
    await expect(upstream.getJson(url, parse)).rejects.toThrow(/maxContentLength/);
    answer = (res) =>
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ ok: true, pad: 'x'.repeat(200 * 1024) }));
    expect((await upstream.getJson(url, parse)).ok).toBe(true);
  });

  it('asks for JSON and sends the query parameters', async () => {
    const upstream = client();
    let seen: { url?: string; accept?: string } = {};
    server.prependListener('request', (req) => (seen = { url: req.url, accept: req.headers.accept }));
    await upstream.getJson(url, parse, { user: 'ada', count: '3' });
    expect(seen.url).toBe('/?user=ada&count=3');
    expect(seen.accept).toBe('application/json');
  });
});

describe("the breaker sees only the third party's failures", () => {
  const stalled = (lostMs: number): LoopStalls => ({ lostSince: () => lostMs, close: () => undefined });

  it('a timeout during a stall of our own (a quarter of the timeout or more) is ours: an OwnStallError, not counted', async () => {
    const upstream = client(
      { timeoutMs: 100, breakerFailures: 2, breakerHalfOpenAfterMs: 60_000 },
      { stalls: stalled(25) },
    );
    delayMs = 400;
    for (let i = 0; i < 3; i++) await expect(upstream.getJson(url, parse)).rejects.toThrow(OwnStallError);
    expect(upstream.breakerState()).toBe('closed');
    expect(catchesUp(new OwnStallError(25, 100))).toBe(true);
    expect(new OwnStallError(25.4, 100).message).toBe(
      "call timed out after 100 ms, 25 ms of it lost to this process's own stalls",
    );
  });

  it("a failure that is not a timeout is the third party's, stall or not: it counts", async () => {
    const upstream = client(
      { timeoutMs: 100, breakerFailures: 2, breakerHalfOpenAfterMs: 60_000 },
      { stalls: stalled(100) },
    );
    failing = true;
    for (let i = 0; i < 2; i++) {
      const error = await upstream.getJson(url, parse).catch((e: unknown) => e);
      expect(error).not.toBeInstanceOf(OwnStallError);
    }
    expect(upstream.breakerState()).toBe('open');
  });

  it("a timeout with our loop stalled for less than a quarter of it is the third party's: it counts", async () => {
    const upstream = client(
      { timeoutMs: 100, breakerFailures: 2, breakerHalfOpenAfterMs: 60_000 },
      { stalls: stalled(24) },
    );
    delayMs = 400;
    for (let i = 0; i < 2; i++) {
      const error = await upstream.getJson(url, parse).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect(error).not.toBeInstanceOf(OwnStallError);
      expect(catchesUp(error)).toBe(false);
    }
    expect(upstream.breakerState()).toBe('open');
  });

  it('tells its listeners and the gauge each state it goes through', async () => {
    const metrics = createMetrics({ collectDefaults: false });
    const upstream = client({ breakerFailures: 1, breakerHalfOpenAfterMs: 100 }, { metrics });
    const gauge = async () =>
      (await metrics.breakerState.get()).values.find((v) => v.labels.service === 'avatars')?.value;
    const states: string[] = [];
    upstream.onBreakerStateChange((state) => states.push(state));
    expect(await gauge()).toBe(0);
    failing = true;
    await expect(upstream.getJson(url, parse)).rejects.toThrow();
    expect(states).toEqual(['open']);
    expect(await gauge()).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 120)); // the half-open time passing is the point
    failing = false;
    const trial = upstream.getJson(url, parse);
    await new Promise<void>((resolve) => (onRequest = resolve)); // the trial call has reached the third party
    expect(upstream.breakerState()).toBe('half-open');
    expect(await gauge()).toBe(1);
    await trial;
    expect(states).toEqual(['open', 'half-open', 'closed']);
    expect(await gauge()).toBe(0);
  });
});

describe('the wait for a slot', () => {
  it('refuses a call at once when the queue is full (maxQueued): skipped over capacity, never made', async () => {
    const metrics = createMetrics({ collectDefaults: false });
    const upstream = client({ maxConcurrent: 1, maxQueued: 1, timeoutMs: 2000 }, { metrics });
    delayMs = 200;
    const first = upstream.getJson(url, parse);
    const queued = upstream.getJson(url, parse);
    const refused = await upstream.getJson(url, parse).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CallSkippedError);
    expect((refused as CallSkippedError).reason).toBe('over_capacity');
    expect(catchesUp(refused)).toBe(true);
    expect(await Promise.all([first, queued])).toEqual([{ ok: true }, { ok: true }]);
    expect(requests).toBe(2);
    expect(await counts(metrics.upstreamSkipped, 'reason')).toEqual({ over_capacity: 1 });
  });

  it('queues four calls per slot unless told otherwise', async () => {
    const upstream = client({ maxConcurrent: 1, timeoutMs: 2000 });
    delayMs = 100;
    const calls = Array.from({ length: 6 }, () => upstream.getJson(url, parse).catch((e: unknown) => e));
    const outcomes = await Promise.all(calls);
    // One in its slot, four queued, the sixth refused.
    expect(outcomes.filter((o) => o instanceof CallSkippedError)).toHaveLength(1);
    expect(outcomes.at(-1)).toBeInstanceOf(CallSkippedError);
    expect(requests).toBe(5);
  });

  it('a call that waited one timeout for its slot is skipped over capacity and never made; the slot passes on', async () => {
    // The slot is held past one timeout by a task that has not made its call yet (its "still
    // wanted?" check is slow), not by a hung call: a hung call's own timeout is as long as the
    // wait, and which of the two equal timers fires first is the machine's to decide.
    let releaseHolder!: () => void;
    const holderHeld = new Promise<void>((resolve) => (releaseHolder = resolve));
    let asked = 0;
    const metrics = createMetrics({ collectDefaults: false });
    const upstream = client(
      { maxConcurrent: 1, timeoutMs: 150 },
      { metrics, stillWanted: async () => (asked++ === 0 ? holderHeld.then(() => true) : true) },
    );
    const holder = upstream.getJson(url, parse).catch((e: unknown) => e);
    const askedAt = performance.now();
    const waiting = await upstream.getJson(url, parse).catch((e: unknown) => e);
    // One timeout, not at once and not for ever (a loose upper bound: a busy machine is late, never early).
    expect(performance.now() - askedAt).toBeGreaterThanOrEqual(140);
    expect(performance.now() - askedAt).toBeLessThan(1500);
    expect(waiting).toBeInstanceOf(CallSkippedError);
    expect((waiting as CallSkippedError).reason).toBe('over_capacity');
    expect(requests).toBe(0);
    expect(await counts(metrics.upstreamSkipped, 'reason')).toEqual({ over_capacity: 1 });
    // The holder goes on (it did not wait for a slot: it had one), and the slot passes on.
    releaseHolder();
    expect(await holder).toEqual({ ok: true });
    expect(await upstream.getJson(url, parse)).toEqual({ ok: true });
    expect(requests).toBe(2); // the skipped call's turn ran as a no-op: never made
    expect(asked).toBe(2);
  });

  it('names its errors, so that a log line says which it was', () => {
    expect(
      [new InvalidResponseError('x'), new CallSkippedError('killed'), new LateError(1), new OwnStallError(1, 4)].map(
        (e) => e.name,
      ),
    ).toEqual(['InvalidResponseError', 'CallSkippedError', 'LateError', 'OwnStallError']);
    expect(new CallSkippedError('breaker_open').message).toBe('third-party call skipped: breaker_open');
  });

  it("what a page waits: the call's own value or failure, as soon as it has it", async () => {
    const upstream = client({ timeoutMs: 5000 });
    const started = performance.now();
    expect(await upstream.within(Promise.resolve('a.png'))).toBe('a.png');
    await expect(upstream.within(Promise.reject(new Error('503')))).rejects.toThrow('503');
    expect(performance.now() - started).toBeLessThan(1000);
    expect(new LateError(5000).message).toBe('no third-party answer within 5000 ms');
  });
});

describe('what a timeout is', () => {
  it("axios's own timeout (ECONNABORTED) is a timeout too, like the policy's", async () => {
    const metrics = createMetrics({ collectDefaults: false });
    const upstream = createUpstreamClient({
      service: 'avatars',
      policy: { timeoutMs: 2000, maxConcurrent: 1, breakerFailures: 1000 },
      metrics,
      logger: createLogger('silent'),
      // A transport whose own limit is shorter than the policy's: it gives up first.
      http: axios.create({ timeout: 50, maxRedirects: 0 }),
    });
    delayMs = 500;
    const error = await upstream.getJson(url, parse).catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe('ECONNABORTED');
    expect(await counts(metrics.upstreamRequests, 'outcome')).toEqual({ timeout: 1 });
  });

  it("without a stall watcher, a timeout is the third party's: the call's own cancellation, counted against the breaker", async () => {
    const upstream = client({ timeoutMs: 100, breakerFailures: 1, breakerHalfOpenAfterMs: 60_000 });
    delayMs = 400;
    const error = await upstream.getJson(url, parse).catch((e: unknown) => e);
    expect(axios.isCancel(error)).toBe(true);
    expect(upstream.breakerState()).toBe('open');
  });

  it('a call refused for a full queue leaves no timer behind (a storm of refusals holds no memory)', async () => {
    const upstream = client({ maxConcurrent: 1, maxQueued: 1, timeoutMs: 2000 });
    delayMs = 200;
    const reached = new Promise<void>((resolve) => (onRequest = resolve));
    const first = upstream.getJson(url, parse);
    const queued = upstream.getJson(url, parse);
    await reached; // the third party's own timer for it is set: nothing else is on its way
    const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
    const before = timers();
    for (let i = 0; i < 5; i++) await expect(upstream.getJson(url, parse)).rejects.toThrow(CallSkippedError);
    expect(timers()).toBe(before);
    await Promise.all([first, queued]);
  });
});
