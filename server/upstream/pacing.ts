import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { UpstreamService } from '../observability/metrics.js';

/** A service as the pacer sees it: how many calls it may have in flight, and how long one takes. */
export interface PacedService {
  readonly service: UpstreamService;
  readonly capacity: number;
  latencyMs(): number;
}

/** Third-party calls one live render would make now, per service (cache misses only). */
export type CallPlan = Partial<Record<UpstreamService, number>>;

/** A time to come back, handed to one viewer: its calls are reserved for then. */
export interface Turn {
  /** Opaque; brought back as `?turn=` it admits the render without asking again. */
  token: string;
  /** From now. */
  waitMs: number;
}

export type Admission = { admitted: true; byTurn: boolean } | { admitted: false; turn: Turn };

export interface Pacer {
  /**
   * Asks for the calls of one live render. Admitted when every service it needs can start them
   * within the budget (or the viewer brings a turn it was given); otherwise the calls are
   * reserved at the first time the services have room for them, and that time is the turn.
   */
  admit(plan: CallPlan, viewerKey: string, options?: { token?: string | undefined; foreground?: boolean }): Admission;
  /** A turn for a render that came out short (its calls were late or over capacity). */
  turnFor(plan: CallPlan, viewerKey: string): Turn;
  /**
   * How long `pages` open pages, each needing `perPage` calls, take at the services' measured
   * pace, after the work already reserved: the window over which they should spread their
   * refetches after a flip so that they arrive as fast as the third party can serve them.
   */
  spreadMs(pages: number, perPage: CallPlan): number;
  /**
   * Every page was just killed: the turns handed out so far will never be used, so the calls
   * reserved for them are released (only what is in flight now stays, at most one latency).
   */
  releaseAll(): void;
}

/** The longest a turn or a spread may be: a page never waits longer than this to try again. */
const MAX_WAIT_MS = 10 * 60_000;
/** A turn is honoured this early (clocks, timers) and this late (a slow tab, a busy network). */
const EARLY_MS = 500;
const STALE_MS = 60_000;
/** A page load (someone waiting) is admitted only within this share of the budget. */
const FOREGROUND_SHARE = 8;

/**
 * Paces live renders by the third party's capacity, so that a restore (or any flip that makes
 * thousands of pages refetch) brings every page back live as fast as the third party allows,
 * and never faster. A fluid model per service: `busyUntil` is when the calls admitted or reserved
 * so far will be done at full capacity (each call adds latency / capacity). A render is admitted
 * while that backlog is within the budget; otherwise it gets a turn: the time the backlog leaves
 * room for it, at which its calls are reserved, so that turns are handed out in order at the
 * third party's pace and a page that comes back on its turn is admitted without asking again.
 * Turns are signed with a key of this process: one cannot be forged to jump the queue.
 */
export function createPacer(options: {
  services: readonly PacedService[];
  /** The wait for a slot an admitted render may face (in the model): a fraction of the timeout. */
  budgetMs: number;
  now?: () => number;
  key?: Buffer;
}): Pacer {
  const now = options.now ?? Date.now;
  const key = options.key ?? randomBytes(32);
  const busyUntil = new Map<UpstreamService, number>();
  const costMs = (service: PacedService, calls: number) => (calls * service.latencyMs()) / service.capacity;
  const needed = (plan: CallPlan) => options.services.filter((service) => (plan[service.service] ?? 0) > 0);
  const backlogMs = (service: PacedService, at: number) => Math.max(0, (busyUntil.get(service.service) ?? 0) - at);

  const reserve = (plan: CallPlan, from: number) => {
    for (const service of needed(plan)) {
      const start = Math.max(from, busyUntil.get(service.service) ?? 0);
      busyUntil.set(service.service, start + costMs(service, plan[service.service]!));
    }
  };

  const signature = (viewerKey: string, at: number) => createHmac('sha256', key).update(`${viewerKey}\n${at}`).digest('base64url').slice(0, 22);

  const turnFor = (plan: CallPlan, viewerKey: string): Turn => {
    const at = now();
    // The first moment every service it needs has its backlog down to half the budget.
    let start = at;
    for (const service of needed(plan)) start = Math.max(start, at + backlogMs(service, at) - options.budgetMs / 2);
    start = Math.min(Math.ceil(start), at + MAX_WAIT_MS);
    reserve(plan, start);
    return { token: `${start}.${signature(viewerKey, start)}`, waitMs: start - at };
  };

  const validTurn = (token: string, viewerKey: string): boolean => {
    const [atText, mac] = token.split('.');
    const at = Number(atText);
    if (!Number.isSafeInteger(at) || !mac) return false;
    const expected = Buffer.from(signature(viewerKey, at));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
    const t = now();
    return at <= t + EARLY_MS && t - at <= STALE_MS;
  };

  return {
    admit(plan, viewerKey, { token, foreground = false } = {}) {
      if (token !== undefined && validTurn(token, viewerKey)) return { admitted: true, byTurn: true };
      const at = now();
      // A person waiting for a page gets it at once, with a turn for the rest, rather than wait
      // in line behind a restore: a page load only takes the calls that start almost at once.
      const budget = foreground ? options.budgetMs / FOREGROUND_SHARE : options.budgetMs;
      if (needed(plan).every((service) => backlogMs(service, at) <= budget)) {
        reserve(plan, at);
        return { admitted: true, byTurn: false };
      }
      return { admitted: false, turn: turnFor(plan, viewerKey) };
    },
    turnFor,
    releaseAll() {
      const at = now();
      for (const service of options.services) {
        const inFlight = at + service.latencyMs();
        if ((busyUntil.get(service.service) ?? 0) > inFlight) busyUntil.set(service.service, inFlight);
      }
    },
    spreadMs(pages, perPage) {
      const at = now();
      let spread = 0;
      for (const service of needed(perPage)) spread = Math.max(spread, backlogMs(service, at) + costMs(service, pages * perPage[service.service]!));
      return Math.min(Math.ceil(spread), MAX_WAIT_MS);
    },
  };
}
