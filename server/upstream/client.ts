import axios, { type AxiosInstance } from 'axios';
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  CircuitState,
  ConsecutiveBreaker,
  TaskCancelledError,
  TimeoutStrategy,
  bulkhead,
  circuitBreaker,
  handleAll,
  timeout,
  wrap,
} from 'cockatiel';
import type { Logger } from '../observability/logger.js';
import type { Metrics, UpstreamOutcome, UpstreamService, UpstreamSkipReason } from '../observability/metrics.js';

export interface UpstreamPolicyOptions {
  /** Hard limit on one call, queue wait included: the page waits at most about this long. */
  timeoutMs: number;
  /** At most this many calls in flight to the service; a few more may wait; the rest fall back. */
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

export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';

const breakerStates: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'isolated',
};

export interface UpstreamClient {
  readonly service: UpstreamService;
  /** GETs a JSON document and parses it; throws on any failure (the caller falls back). */
  getJson<T>(url: string, parse: (body: unknown) => T, params?: Record<string, string>): Promise<T>;
  breakerState(): BreakerState;
  onBreakerStateChange(listener: (state: BreakerState) => void): void;
}

/**
 * One third-party service behind axios and cockatiel's policies, outermost first: a timeout that
 * covers waiting and calling (its AbortSignal goes to axios), a bulkhead that caps concurrent
 * calls, and a circuit breaker that stops calling a service that keeps failing. Every call
 * actually made is counted in upstream_requests_total by outcome; a call the policies refuse is
 * counted in upstream_calls_skipped_total instead.
 */
export function createUpstreamClient(options: {
  service: UpstreamService;
  policy: UpstreamPolicyOptions;
  metrics: Metrics;
  logger: Logger;
  http?: AxiosInstance;
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

  const breaker = circuitBreaker(handleAll, {
    halfOpenAfter: policy.breakerHalfOpenAfterMs ?? 5_000,
    breaker: new ConsecutiveBreaker(policy.breakerFailures ?? 5),
  });
  const guarded = wrap(
    timeout(policy.timeoutMs, TimeoutStrategy.Aggressive),
    bulkhead(policy.maxConcurrent, policy.maxQueued ?? policy.maxConcurrent * 4),
    breaker,
  );
  const gaugeValue: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2, isolated: 2 };
  metrics.breakerState.set({ service }, 0);
  breaker.onStateChange((state) => {
    metrics.breakerState.set({ service }, gaugeValue[breakerStates[state]]);
    logger.warn({ service, state: breakerStates[state] }, `circuit breaker for ${service} is ${breakerStates[state]}`);
  });

  const skipped = (reason: UpstreamSkipReason) => {
    metrics.upstreamSkipped.inc({ service, reason });
    return new CallSkippedError(reason);
  };

  return {
    service,
    breakerState: () => breakerStates[breaker.state],
    onBreakerStateChange: (listener) => void breaker.onStateChange((state) => listener(breakerStates[state])),
    async getJson<T>(url: string, parse: (body: unknown) => T, params?: Record<string, string>): Promise<T> {
      let made = false;
      try {
        // A signal of its own per call: without one, cockatiel hangs every call's listener on one
        // shared never-aborting signal (and Node warns past ten concurrent calls).
        return await guarded.execute(async ({ signal }) => {
          made = true;
          const stop = metrics.upstreamDuration.startTimer({ service });
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
            throw error;
          } finally {
            metrics.upstreamRequests.inc({ service, outcome });
            stop({ outcome });
          }
        }, new AbortController().signal);
      } catch (error) {
        if (made) throw error;
        if (error instanceof BrokenCircuitError) throw skipped('breaker_open');
        if (error instanceof BulkheadRejectedError || error instanceof TaskCancelledError) throw skipped('over_capacity');
        throw error;
      }
    },
  };
}
