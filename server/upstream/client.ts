import axios, { type AxiosInstance } from 'axios';
import {
  BrokenCircuitError,
  BulkheadPolicy,
  BulkheadRejectedError,
  CircuitState,
  ConsecutiveBreaker,
  TaskCancelledError,
  TimeoutStrategy,
  bulkhead,
  circuitBreaker,
  handleWhen,
  timeout,
} from 'cockatiel';
import { TIMED_OUT, within } from '../bounded-wait.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics, UpstreamOutcome, UpstreamService, UpstreamSkipReason } from '../observability/metrics.js';
import type { LoopStalls } from './loop-stalls.js';

export interface UpstreamPolicyOptions {
  /** Hard limit on one call from its start, and on how long a page waits for a result. */
  timeoutMs: number;
  /** At most this many calls in flight to the service, calls we gave up on included. */
  maxConcurrent: number;
  maxQueued?: number;
  /** Consecutive failures that open the breaker, and how long it stays open before a trial call. */
  breakerFailures?: number;
  breakerHalfOpenAfterMs?: number;
}

export class InvalidResponseError extends Error {
  override name = 'InvalidResponseError';
}

/** A call that was not made at all: it is counted as skipped, never as a request. */
export class CallSkippedError extends Error {
  override name = 'CallSkippedError';
  constructor(readonly reason: UpstreamSkipReason) {
    super(`third-party call skipped: ${reason}`);
  }
}

/** The page stopped waiting; the call itself goes on (its result still fills the caches). */
export class LateError extends Error {
  override name = 'LateError';
  constructor(readonly waitedMs: number) {
    super(`no third-party answer within ${waitedMs} ms`);
  }
}

/**
 * A call that passed its timeout while this process's own event loop was stalled for a good part
 * of it: the answer may have been waiting for us. Not the third party's failure.
 */
export class OwnStallError extends Error {
  override name = 'OwnStallError';
  constructor(readonly lostMs: number, timeoutMs: number) {
    super(`call timed out after ${timeoutMs} ms, ${Math.round(lostMs)} ms of it lost to this process's own stalls`);
  }
}

/** The share of the timeout our own stalls must take for a timeout to be ours. */
const OWN_STALL_SHARE = 4;

export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';

const breakerStates: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'isolated',
};

export interface UpstreamClient {
  readonly service: UpstreamService;
  /** Calls in flight at most (the bulkhead's size). */
  readonly capacity: number;
  /**
   * GETs a JSON document and parses it; throws on any failure. Waits for a free slot at most
   * one timeout (then a CallSkippedError 'over_capacity'); the call then has one timeout of its
   * own. Use `within` for what a page may wait.
   */
  getJson<T>(url: string, parse: (body: unknown) => T, params?: Record<string, string>): Promise<T>;
  /** What a page waits for a call: its result, or a LateError after one timeout (the call goes on). */
  within<T>(call: Promise<T>): Promise<T>;
  /** The typical duration of one call here, measured (a moving average); a guess before the first. */
  latencyMs(): number;
  breakerState(): BreakerState;
  onBreakerStateChange(listener: (state: BreakerState) => void): void;
}

/**
 * One third-party service behind axios and cockatiel's policies, outermost first: a bulkhead
 * that caps calls in flight (a call holds its slot until its connection is done, even when the
 * page stopped waiting), a circuit breaker that stops calling a service that keeps failing, and
 * a timeout on the call itself (its AbortSignal goes to axios). The breaker sees only the third
 * party's own failures, so a burst of our own cannot open it: a wait for a slot never counts
 * against it, nor a timeout during which our own event loop was stalled for a quarter of the
 * timeout or more (`stalls`; an OwnStallError, which a page catches up from). Every call actually made is counted in upstream_requests_total by outcome; a call the
 * policies refuse is counted in upstream_calls_skipped_total instead.
 */
export function createUpstreamClient(options: {
  service: UpstreamService;
  policy: UpstreamPolicyOptions;
  metrics: Metrics;
  logger: Logger;
  http?: AxiosInstance;
  /** This process's own stalls; without it every timeout counts against the breaker. */
  stalls?: LoopStalls;
  /**
   * Asked when a call gets its slot, before it is made: false when it is no longer wanted (the
   * kill switch went off for everyone while it waited in the queue). Such a call is never made:
   * a kill stops the calls already queued, not only those of later pages.
   */
  stillWanted?: () => boolean | Promise<boolean>;
}): UpstreamClient {
  const { service, policy, metrics, logger } = options;
  const http =
    options.http ??
    axios.create({
      timeout: policy.timeoutMs,
      maxRedirects: 0,
      maxContentLength: 256 * 1024,
      responseType: 'json',
      headers: { accept: 'application/json' },
    });

  const slots: BulkheadPolicy = bulkhead(policy.maxConcurrent, policy.maxQueued ?? policy.maxConcurrent * 4);
  const breaker = circuitBreaker(handleWhen((error) => !(error instanceof OwnStallError)), {
    halfOpenAfter: policy.breakerHalfOpenAfterMs ?? 5_000,
    breaker: new ConsecutiveBreaker(policy.breakerFailures ?? 5),
  });
  // Cooperative: the call is aborted and then awaited, so that its slot is held until it is done.
  const callTimeout = timeout(policy.timeoutMs, TimeoutStrategy.Cooperative);
  const gaugeValue: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2, isolated: 2 };
  metrics.breakerState.set({ service }, 0);
  breaker.onStateChange((state) => {
    metrics.breakerState.set({ service }, gaugeValue[breakerStates[state]]);
    logger.warn({ service, state: breakerStates[state] }, `circuit breaker for ${service} is ${breakerStates[state]}`);
  });

  // Until the first call is measured, a cautious guess (a quarter of the timeout): a restore right
  // after a start (kills survive restarts) spreads its pages over a window sized by this guess,
  // and a window too short sends every page at once, to the third party and to this process.
  let latency: number | undefined;
  const measured = (ms: number) => {
    latency = latency === undefined ? ms : latency * 0.8 + ms * 0.2;
  };

  const skipped = (reason: UpstreamSkipReason) => {
    metrics.upstreamSkipped.inc({ service, reason });
    return new CallSkippedError(reason);
  };

  /** One request, made: counted, measured, and its slot held until its connection is done. */
  async function request<T>(url: string, parse: (body: unknown) => T, params: Record<string, string> | undefined, signal: AbortSignal): Promise<T> {
    const stop = metrics.upstreamDuration.startTimer({ service });
    const startedAt = performance.now();
    let outcome: UpstreamOutcome = 'ok';
    try {
      const response = await http.get(url, { params, signal });
      try {
        return parse(response.data);
      } catch (error) {
        outcome = 'invalid';
        throw new InvalidResponseError(`${service} sent an unexpected body: ${(error as Error).message}`);
      }
    } catch (error) {
      if (outcome === 'ok') outcome = signal.aborted || axios.isCancel(error) || (error as { code?: string }).code === 'ECONNABORTED' ? 'timeout' : 'error';
      if (outcome !== 'timeout') throw error;
      // The slot is free again as this returns, and the connection is already closed: axios's http
      // adapter destroys the request in the same abort that rejects the call, before the rejection
      // reaches this code, so the third party sees the call end before a waiting call can start.
      const lostMs = options.stalls?.lostSince(startedAt) ?? 0;
      if (lostMs >= policy.timeoutMs / OWN_STALL_SHARE) {
        logger.debug({ service, lostMs: Math.round(lostMs) }, 'a call timed out during a stall of our own: not counted against the breaker');
        throw new OwnStallError(lostMs, policy.timeoutMs);
      }
      throw error;
    } finally {
      metrics.upstreamRequests.inc({ service, outcome });
      // Measured as this process sees it, our own stalls included: when this process is the
      // bottleneck (a restore of thousands of pages on one core), the pace slows down with it.
      measured(stop({ outcome }) * 1000);
    }
  }

  return {
    service,
    capacity: policy.maxConcurrent,
    latencyMs: () => latency ?? policy.timeoutMs / 4,
    breakerState: () => breakerStates[breaker.state],
    onBreakerStateChange: (listener) => void breaker.onStateChange((state) => listener(breakerStates[state])),
    async getJson<T>(url: string, parse: (body: unknown) => T, params?: Record<string, string>): Promise<T> {
      // Waiting for a slot ends after one timeout; a call that has started is not cancelled by it.
      // The wait is bounded here, not with an AbortSignal to the bulkhead: cockatiel rejects an
      // aborted queued task only when it reaches the head of the queue, and that rejection frees no
      // slot for the next one, so every task queued behind it would wait forever (a stuck call
      // that its single-flight would hand to every later page). A task given up on runs as a no-op
      // when its turn comes, which passes the slot on.
      let gaveUp = false;
      let giveUp: (error: Error) => void = () => undefined;
      const limit = new Promise<never>((_, reject) => (giveUp = reject));
      // Set before the task can start (a free slot runs it at once), so that starting clears it.
      const waitLimit = setTimeout(() => {
        gaveUp = true;
        slot.catch(() => undefined); // its no-op run rejects later, unobserved
        giveUp(new TaskCancelledError());
      }, policy.timeoutMs);
      const slot: Promise<T> = slots.execute(async () => {
        clearTimeout(waitLimit);
        if (gaveUp) throw new TaskCancelledError();
        if (options.stillWanted && !(await options.stillWanted())) throw skipped('killed');
        // A signal of its own per call: without one, cockatiel hangs every call's listener on one
        // shared never-aborting signal (and Node warns past ten concurrent calls).
        return breaker.execute(
          () =>
            callTimeout.execute(({ signal }) => request(url, parse, params, signal), new AbortController().signal),
          new AbortController().signal,
        );
      });
      try {
        return await Promise.race([slot, limit]);
      } catch (error) {
        // Only the policies throw these, before a call is made (the cooperative timeout passes on
        // the call's own failure): a call made is never counted as skipped.
        if (error instanceof BrokenCircuitError) throw skipped('breaker_open');
        if (error instanceof BulkheadRejectedError || error instanceof TaskCancelledError) throw skipped('over_capacity');
        throw error;
      } finally {
        clearTimeout(waitLimit);
      }
    },
    async within<T>(call: Promise<T>): Promise<T> {
      const result = await within(call, policy.timeoutMs);
      if (result === TIMED_OUT) throw new LateError(policy.timeoutMs);
      return result;
    },
  };
}

/**
 * Whether a fallback is worth asking again soon: it came from our own saturation (no slot in
 * time, or a timeout during our own stall) or from a page that stopped waiting while the call
 * went on (its answer lands in the cache). Not when the third party failed or its breaker is open: asking again would only load it.
 */
export function catchesUp(error: unknown): boolean {
  return (error instanceof CallSkippedError && error.reason === 'over_capacity') || error instanceof LateError || error instanceof OwnStallError;
}
