import axios, { type AxiosInstance } from 'axios';
import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  TimeoutStrategy,
  circuitBreaker,
  handleWhen,
  timeout,
} from 'cockatiel';
import { TIMED_OUT, within } from '../bounded-wait.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics, UpstreamOutcome, UpstreamService, UpstreamSkipReason } from '../observability/metrics.js';
import type { BudgetState } from '../../protocol/wire.js';
import { InstanceBudget, type Budget } from './budget.js';
import type { LoopStalls } from './loop-stalls.js';
import { Slots } from './slots.js';

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
  constructor(
    readonly lostMs: number,
    timeoutMs: number,
  ) {
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
  /** The calls in flight the pacer plans with: the cap, or this instance's expected part of the cluster's. */
  readonly capacity: number;
  /** The calls in flight allowed, and how they stand (this instance's, or the cluster's with Redis). */
  budgetUsage(): BudgetState;
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
  /** When the breaker took its present state (epoch ms): since this client was made, if never changed. */
  breakerSince(): number;
  /** The limit on one call (UPSTREAM_TIMEOUT_MS). */
  readonly timeoutMs: number;
  onBreakerStateChange(listener: (state: BreakerState) => void): void;
  /**
   * Since this client was made: calls made, those the third party failed (an error, a timeout, an
   * invalid answer; not a timeout during our own stall), and how many times the breaker opened.
   * What a guarded restore judges a stage by.
   */
  outcomes(): CallOutcomes;
}

export interface CallOutcomes {
  calls: number;
  failed: number;
  breakerOpened: number;
}

export interface UpstreamClientOptions {
  service: UpstreamService;
  policy: UpstreamPolicyOptions;
  /** Where the cap on calls in flight is kept: this instance (the default), or the cluster's (Redis). */
  budget?: Budget;
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
}

const GAUGE_VALUES: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2, isolated: 2 };

/**
 * The typical duration of one call here, a moving average measured as this process sees it, our
 * own stalls included: when this process is the bottleneck (a restore of thousands of pages on
 * one core), the pace slows down with it. Until the first call, a cautious guess (a quarter of
 * the timeout): a restore right after a start spreads its pages over a window sized by it, and a
 * window too short would send every page at once.
 */
class MovingLatency {
  private average: number | undefined;

  constructor(private readonly guessMs: number) {}

  measured(ms: number): void {
    this.average = this.average === undefined ? ms : this.average * 0.8 + ms * 0.2;
  }

  ms(): number {
    return this.average ?? this.guessMs;
  }
}

/**
 * One third-party service behind axios and cockatiel's policies, outermost first: slots that cap
 * calls in flight by the budget (a call holds its slot until its connection is done, even when the
 * page stopped waiting), a circuit breaker that stops calling a service that keeps failing, and
 * a timeout on the call itself (its AbortSignal goes to axios). The breaker sees only the third
 * party's own failures, so a burst of our own cannot open it: a wait for a slot never counts
 * against it, nor a timeout during which our own event loop was stalled for a quarter of the
 * timeout or more (`stalls`; an OwnStallError, which a page catches up from). Every call actually
 * made is counted in upstream_requests_total by outcome; a call the policies refuse is counted in
 * upstream_calls_skipped_total instead.
 */
class PolicedClient implements UpstreamClient {
  readonly service: UpstreamService;
  private readonly http: AxiosInstance;
  private readonly budget: Budget;
  private readonly slots: Slots;
  private readonly breaker;
  // Cooperative: the call is aborted and then awaited, so that its slot is held until it is done.
  private readonly callTimeout;
  private readonly latency: MovingLatency;
  private readonly tally: CallOutcomes = { calls: 0, failed: 0, breakerOpened: 0 };
  private breakerChangedAt = Date.now();

  constructor(private readonly options: UpstreamClientOptions) {
    const { service, policy, metrics, logger } = options;
    this.service = service;
    this.http =
      options.http ??
      axios.create({
        timeout: policy.timeoutMs,
        maxRedirects: 0,
        maxContentLength: 256 * 1024,
        responseType: 'json',
        headers: { accept: 'application/json' },
      });
    const budget = (this.budget = options.budget ?? new InstanceBudget(policy.maxConcurrent));
    const slots = (this.slots = new Slots(
      () => budget.held(),
      policy.maxQueued ?? budget.cap * 4,
      (wanted) => budget.want(wanted, slots.inFlight),
    ));
    budget.onChange(() => slots.wake());
    this.breaker = circuitBreaker(
      handleWhen((error) => !(error instanceof OwnStallError)),
      {
        halfOpenAfter: policy.breakerHalfOpenAfterMs ?? 5_000,
        breaker: new ConsecutiveBreaker(policy.breakerFailures ?? 5),
      },
    );
    this.callTimeout = timeout(policy.timeoutMs, TimeoutStrategy.Cooperative);
    this.latency = new MovingLatency(policy.timeoutMs / 4);
    metrics.breakerState.set({ service }, 0);
    this.breaker.onStateChange((state) => {
      this.breakerChangedAt = Date.now();
      if (state === CircuitState.Open) this.tally.breakerOpened++;
      metrics.breakerState.set({ service }, GAUGE_VALUES[breakerStates[state]]);
      logger.warn(
        { service, state: breakerStates[state] },
        `circuit breaker for ${service} is ${breakerStates[state]}`,
      );
    });
  }

  get capacity(): number {
    return this.budget.expected();
  }

  budgetUsage(): BudgetState {
    return this.budget.usage(this.slots.inFlight);
  }

  latencyMs(): number {
    return this.latency.ms();
  }

  breakerState(): BreakerState {
    return breakerStates[this.breaker.state];
  }

  breakerSince(): number {
    return this.breakerChangedAt;
  }

  get timeoutMs(): number {
    return this.options.policy.timeoutMs;
  }

  onBreakerStateChange(listener: (state: BreakerState) => void): void {
    this.breaker.onStateChange((state) => listener(breakerStates[state]));
  }

  outcomes(): CallOutcomes {
    return { ...this.tally };
  }

  /**
   * Waits for a slot at most one timeout (then the call is skipped, over capacity); a call that has
   * started is not cancelled by that, and holds its slot until its connection is done.
   */
  async getJson<T>(url: string, parse: (body: unknown) => T, params?: Record<string, string>): Promise<T> {
    const release = await this.slots.acquire(this.options.policy.timeoutMs);
    if (!release) throw this.skipped('over_capacity');
    try {
      if (this.options.stillWanted && !(await this.options.stillWanted())) throw this.skipped('killed');
      // A signal of its own per call: without one, cockatiel hangs every call's listener on one
      // shared never-aborting signal (and Node warns past ten concurrent calls).
      return await this.breaker.execute(
        () =>
          this.callTimeout.execute(
            ({ signal }) => this.request(url, parse, params, signal),
            new AbortController().signal,
          ),
        new AbortController().signal,
      );
    } catch (error) {
      // Only the breaker throws this, before a call is made: a call made is never counted as skipped.
      if (error instanceof BrokenCircuitError) throw this.skipped('breaker_open');
      throw error;
    } finally {
      release();
    }
  }

  async within<T>(call: Promise<T>): Promise<T> {
    const result = await within(call, this.options.policy.timeoutMs);
    if (result === TIMED_OUT) throw new LateError(this.options.policy.timeoutMs);
    return result;
  }

  private skipped(reason: UpstreamSkipReason): CallSkippedError {
    this.options.metrics.upstreamSkipped.inc({ service: this.service, reason });
    return new CallSkippedError(reason);
  }

  /** One request, made: counted, measured, and its slot held until its connection is done. */
  private async request<T>(
    url: string,
    parse: (body: unknown) => T,
    params: Record<string, string> | undefined,
    signal: AbortSignal,
  ): Promise<T> {
    const { metrics } = this.options;
    const stop = metrics.upstreamDuration.startTimer({ service: this.service });
    const startedAt = performance.now();
    let outcome: UpstreamOutcome = 'ok';
    let ours = false;
    try {
      const response = await this.http.get(url, { params, signal });
      try {
        return parse(response.data);
      } catch (error) {
        outcome = 'invalid';
        throw new InvalidResponseError(`${this.service} sent an unexpected body: ${(error as Error).message}`);
      }
    } catch (error) {
      if (outcome === 'ok')
        outcome =
          signal.aborted || axios.isCancel(error) || (error as { code?: string }).code === 'ECONNABORTED'
            ? 'timeout'
            : 'error';
      if (outcome === 'timeout') {
        const thrown = this.ownStallOr(error, startedAt);
        ours = thrown instanceof OwnStallError;
        throw thrown;
      }
      throw error;
    } finally {
      metrics.upstreamRequests.inc({ service: this.service, outcome });
      this.tally.calls++;
      if (outcome !== 'ok' && !ours) this.tally.failed++;
      this.latency.measured(stop({ outcome }) * 1000);
    }
  }

  /**
   * A timeout's error: an OwnStallError when our own loop lost a quarter of the timeout or more
   * meanwhile (the answer may have been waiting for us), else the timeout itself. The slot is free
   * as this returns: axios's http adapter destroys the request in the same abort that rejects it.
   */
  private ownStallOr(error: unknown, startedAt: number): unknown {
    const { policy, stalls, logger } = this.options;
    const lostMs = stalls?.lostSince(startedAt) ?? 0;
    if (lostMs < policy.timeoutMs / OWN_STALL_SHARE) return error;
    logger.debug(
      { service: this.service, lostMs: Math.round(lostMs) },
      'a call timed out during a stall of our own: not counted against the breaker',
    );
    return new OwnStallError(lostMs, policy.timeoutMs);
  }
}

export function createUpstreamClient(options: UpstreamClientOptions): UpstreamClient {
  return new PolicedClient(options);
}

/**
 * Whether a fallback is worth asking again soon: it came from our own saturation (no slot in
 * time, or a timeout during our own stall) or from a page that stopped waiting while the call
 * went on (its answer lands in the cache). Not when the third party failed or its breaker is open: asking again would only load it.
 */
export function catchesUp(error: unknown): boolean {
  return (
    (error instanceof CallSkippedError && error.reason === 'over_capacity') ||
    error instanceof LateError ||
    error instanceof OwnStallError
  );
}
