import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { UpstreamService } from '../observability/metrics.js';

/**
 * What a live render uses, as the pacer sees it: a third-party service, or this process's own
 * event loop (`renderer`: one render at a time, each costing the CPU time it was measured at).
 */
export type PacedResource = UpstreamService | 'renderer';

/** A resource as the pacer sees it: how many calls it may have in flight, and how long one takes. */
export interface PacedService {
  readonly service: PacedResource;
  readonly capacity: number;
  latencyMs(): number;
}

/** What one live render would use now, per resource: third-party calls (cache misses only), renders. */
export type CallPlan = Partial<Record<PacedResource, number>>;

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
   * reserved at the first time the services have room for them, and that time is the turn. A
   * viewer that holds a turn already (a reload, a second tab) is given the same one again.
   */
  admit(plan: CallPlan, viewerKey: string, options?: { token?: string | undefined; foreground?: boolean }): Admission;
  /**
   * A turn for a render that came out short (its calls were late or over capacity). `priority`:
   * someone is waiting (a page load), so the turn comes within half the budget, ahead of the
   * turns of pages already open; its calls are still booked, and every later turn moves back by them.
   */
  turnFor(plan: CallPlan, viewerKey: string, options?: { priority?: boolean }): Turn;
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
  /** Turns handed out and not yet brought back nor given up on. */
  turnsHeld(): number;
}

/** The longest a turn or a spread may be: a page never waits longer than this to try again. */
const MAX_WAIT_MS = 10 * 60_000;
/** A turn is honoured this early (clocks, timers) and this late (a slow tab, a busy network). */
const EARLY_MS = 500;
const STALE_MS = 60_000;
/**
 * A turn not brought back this long after its time was given up on (the reader left, the tab
 * slept): the calls reserved for it are released, so that a launch's bounces do not push every
 * later turn back. Brought back later still (up to STALE_MS) it is honoured all the same.
 */
const ABANDONED_AFTER_MS = 3_000;
/** How often, at most, the held turns are looked over for abandoned ones (on the next request). */
const SWEEP_EVERY_MS = 250;
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
  const busyUntil = new Map<PacedResource, number>();
  // One turn per viewer at most: a viewer asking again before its turn gets the same one, so
  // that a reload (or a client that never comes back) cannot book the same calls twice.
  const held = new Map<string, { at: number; token: string; plan: CallPlan }>();
  let sweptAt = Number.NEGATIVE_INFINITY;
  const costMs = (service: PacedService, calls: number) => (calls * service.latencyMs()) / service.capacity;
  const needed = (plan: CallPlan) => options.services.filter((service) => (plan[service.service] ?? 0) > 0);
  const backlogMs = (service: PacedService, at: number) => Math.max(0, (busyUntil.get(service.service) ?? 0) - at);

  const reserve = (plan: CallPlan, from: number) => {
    for (const service of needed(plan)) {
      const start = Math.max(from, busyUntil.get(service.service) ?? 0);
      busyUntil.set(service.service, start + costMs(service, plan[service.service]!));
    }
  };

  /** Gives back what an abandoned turn reserved: every later reservation may start that much sooner. */
  const release = (plan: CallPlan, at: number) => {
    for (const service of needed(plan)) {
      const until = busyUntil.get(service.service) ?? 0;
      busyUntil.set(service.service, Math.max(at, until - costMs(service, plan[service.service]!)));
    }
  };

  const sweep = (at: number) => {
    if (at - sweptAt < SWEEP_EVERY_MS) return;
    sweptAt = at;
    for (const [viewerKey, turn] of held) {
      if (at - turn.at > ABANDONED_AFTER_MS) {
        held.delete(viewerKey);
        release(turn.plan, at);
      }
    }
  };

  const signature = (viewerKey: string, at: number) => createHmac('sha256', key).update(`${viewerKey}\n${at}`).digest('base64url').slice(0, 22);

  const turnFor = (plan: CallPlan, viewerKey: string, { priority = false } = {}): Turn => {
    const at = now();
    sweep(at);
    // The first moment every service it needs has its backlog down to half the budget; for
    // someone waiting, no later than half the budget from now (a restore's thousands of open
    // pages are not waited behind: a new reader's page fills in within a moment).
    let start = at;
    for (const service of needed(plan)) start = Math.max(start, at + backlogMs(service, at) - options.budgetMs / 2);
    if (priority) start = Math.min(start, at + options.budgetMs / 2);
    start = Math.min(Math.ceil(start), at + MAX_WAIT_MS);
    const current = held.get(viewerKey);
    if (current && at - current.at <= ABANDONED_AFTER_MS) {
      if (current.at <= start) return { token: current.token, waitMs: Math.max(0, current.at - at) };
      // Someone waiting, with an open page's turn far ahead: the earlier turn replaces it.
      held.delete(viewerKey);
      release(current.plan, at);
    }
    reserve(plan, start);
    const token = `${start}.${signature(viewerKey, start)}`;
    held.set(viewerKey, { at: start, token, plan });
    return { token, waitMs: start - at };
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
      if (token !== undefined && validTurn(token, viewerKey)) {
        // Brought back: its calls were reserved when it was handed out (unless it was given up
        // on, and then there is room for them again by now).
        if (held.get(viewerKey)?.token === token) held.delete(viewerKey);
        return { admitted: true, byTurn: true };
      }
      const at = now();
      sweep(at);
      // A person waiting for a page gets it at once, with a turn for the rest, rather than wait
      // in line behind a restore: a page load only takes the calls that start almost at once.
      const budget = foreground ? options.budgetMs / FOREGROUND_SHARE : options.budgetMs;
      if (needed(plan).every((service) => backlogMs(service, at) <= budget)) {
        // Room now for a viewer that holds a turn (a reload): served now, its turn given back.
        const current = held.get(viewerKey);
        if (current) {
          held.delete(viewerKey);
          release(current.plan, at);
        }
        reserve(plan, at);
        return { admitted: true, byTurn: false };
      }
      return { admitted: false, turn: turnFor(plan, viewerKey, { priority: foreground }) };
    },
    turnFor,
    releaseAll() {
      const at = now();
      held.clear();
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
    turnsHeld: () => held.size,
  };
}
