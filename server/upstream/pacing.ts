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

/**
 * A call any page may need, the same for all (an author's avatar, on every page): booked once, on
 * the first turn that needs it; a page that needs it after that comes back once that turn has made it.
 */
export interface SharedCall {
  service: PacedResource;
  key: string;
}

/** A time to come back, handed to one viewer: its calls were booked when it was handed out. */
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
   * within the budget (or the viewer brings a turn it was given); otherwise each call is booked
   * in its service's queue, and the turn is when the busiest of them has room for it. A
   * viewer that holds a turn already (a reload, a second tab) is given the same one again.
   */
  admit(
    plan: CallPlan,
    viewerKey: string,
    options?: { token?: string | undefined; foreground?: boolean; shared?: readonly SharedCall[] },
  ): Admission;
  /**
   * A turn for a render that came out short (its calls were late or over capacity). `priority`:
   * someone is waiting (a page load), so the turn comes within half the budget, ahead of the
   * turns of pages already open; its calls are still booked, and every later turn moves back by them.
   */
  turnFor(plan: CallPlan, viewerKey: string, options?: { priority?: boolean; shared?: readonly SharedCall[] }): Turn;
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

/** A turn handed out and not yet brought back: when, its token, and the calls reserved for it. */
interface HeldTurn {
  at: number;
  token: string;
  plan: CallPlan;
  /** The shared calls booked on it (see SharedCall). */
  shared: string[];
}

/**
 * Paces live renders by the third party's capacity, so that a restore (or any flip that makes
 * thousands of pages refetch) brings every page back live as fast as the third party allows,
 * and never faster. A fluid model per service: `busyUntil` is when the calls admitted or reserved
 * so far will be done at full capacity (each call adds latency / capacity). A render is admitted
 * while that backlog is within the budget; otherwise it gets a turn: the time the backlog leaves
 * room for it, so that turns are handed out in order at the third party's pace and a page that
 * comes back on its turn is admitted without asking again. Each call is booked in its own
 * service's queue: a less busy service's call is counted from now, though it is made at the turn
 * (the model keeps one backlog per service, not gaps in it); the slots still hold the cap then.
 * Turns are signed with a key of this process: one cannot be forged to jump the queue.
 */
class FluidPacer implements Pacer {
  private readonly busyUntil = new Map<PacedResource, number>();
  /** The pace (ms a call, at capacity) `busyUntil` was reckoned at: the backlog is rescaled when it changes. */
  private readonly reckonedAt = new Map<PacedResource, number>();
  // One turn per viewer at most: a viewer asking again before its turn gets the same one, so
  // that a reload (or a client that never comes back) cannot book the same calls twice.
  private readonly held = new Map<string, HeldTurn>();
  /** Each shared call booked on a turn to come: when that turn is. */
  private readonly sharedAt = new Map<string, number>();
  private sweptAt = Number.NEGATIVE_INFINITY;
  private readonly now: () => number;
  private readonly key: Buffer;

  constructor(
    private readonly options: { services: readonly PacedService[]; budgetMs: number; now?: () => number; key?: Buffer },
  ) {
    this.now = options.now ?? Date.now;
    this.key = options.key ?? randomBytes(32);
  }

  admit(
    plan: CallPlan,
    viewerKey: string,
    {
      token,
      foreground = false,
      shared = [],
    }: { token?: string | undefined; foreground?: boolean; shared?: readonly SharedCall[] } = {},
  ): Admission {
    if (token !== undefined && this.validTurn(token, viewerKey)) {
      // Brought back: its calls were reserved when it was handed out (unless it was given up
      // on, and then there is room for them again by now).
      if (this.held.get(viewerKey)?.token === token) this.held.delete(viewerKey);
      return { admitted: true, byTurn: true };
    }
    const at = this.now();
    this.sweep(at);
    const booking = this.withShared(plan, shared, at, viewerKey, foreground);
    const { calls, after } = booking;
    // A person waiting for a page gets it at once, with a turn for the rest, rather than wait in
    // line behind a restore: a page load only takes the calls that start almost at once. A render
    // that needs a shared call booked on a turn to come waits for that turn, rather than make it twice.
    const budget = foreground ? this.options.budgetMs / FOREGROUND_SHARE : this.options.budgetMs;
    if (after > at || !this.needed(calls).every((service) => this.backlogMs(service, at) <= budget)) {
      return { admitted: false, turn: this.bookTurn(viewerKey, at, foreground, booking) };
    }
    // Room now for a viewer that holds a turn (a reload): served now, its turn given back.
    this.giveBack(viewerKey, at);
    this.reserve(calls, at);
    return { admitted: true, byTurn: false };
  }

  turnFor(
    plan: CallPlan,
    viewerKey: string,
    { priority = false, shared = [] }: { priority?: boolean; shared?: readonly SharedCall[] } = {},
  ): Turn {
    const at = this.now();
    this.sweep(at);
    return this.bookTurn(viewerKey, at, priority, this.withShared(plan, shared, at, viewerKey, priority));
  }

  /** The turn for a plan whose shared calls `withShared` has already looked up (at `at`). */
  private bookTurn(
    viewerKey: string,
    at: number,
    priority: boolean,
    { calls, fresh, after }: ReturnType<FluidPacer['withShared']>,
  ): Turn {
    const queued = this.startFor(calls, at, priority);
    const start = Math.max(queued, Math.min(Math.ceil(after), at + MAX_WAIT_MS));
    const current = this.held.get(viewerKey);
    if (current && at - current.at <= ABANDONED_AFTER_MS) {
      if (current.at <= start && current.at >= after)
        return { token: current.token, waitMs: Math.max(0, current.at - at) };
      // Someone waiting, with an open page's turn far ahead: the earlier turn replaces it.
      this.giveBack(viewerKey, at);
    }
    // Booked in each service's own queue, not at the turn: a page that waits for one busy service
    // (or for another turn's shared call) does not make every other service look busy until then.
    // Its call to a less busy service is made at the turn, where nothing is booked for it.
    this.reserve(calls, at);
    for (const id of fresh) {
      // Kept when a turn to come has it earlier (someone waiting booked it again): not pushed back.
      const booked = this.sharedAt.get(id);
      this.sharedAt.set(id, booked !== undefined && booked > at ? Math.min(booked, start) : start);
    }
    const token = `${start}.${this.signature(viewerKey, start)}`;
    this.held.set(viewerKey, { at: start, token, plan: calls, shared: fresh });
    return { token, waitMs: start - at };
  }

  /**
   * The plan with the shared calls no turn to come has booked yet (`fresh`, added to it), and
   * when the latest of those already booked will be done (its turn, plus a call's latency). The
   * viewer's own turn's bookings are its own to book again; someone waiting (`priority`) books
   * again a call booked further off than half the budget, rather than wait for it.
   */
  private withShared(plan: CallPlan, shared: readonly SharedCall[], at: number, viewerKey: string, priority: boolean) {
    const calls: CallPlan = { ...plan };
    const fresh: string[] = [];
    const current = this.held.get(viewerKey);
    const own = new Set(current && at - current.at <= ABANDONED_AFTER_MS ? current.shared : []);
    let after = Number.NEGATIVE_INFINITY;
    for (const { service, key } of shared) {
      const id = `${service}\n${key}`;
      const bookedAt = this.sharedAt.get(id);
      const latency = this.options.services.find((s) => s.service === service)?.latencyMs() ?? 0;
      const doneAt = bookedAt === undefined || bookedAt <= at || own.has(id) ? undefined : bookedAt + latency;
      if (doneAt !== undefined && !(priority && doneAt > at + this.options.budgetMs / 2)) {
        after = Math.max(after, doneAt);
      } else if (!fresh.includes(id)) {
        fresh.push(id);
        calls[service] = (calls[service] ?? 0) + 1;
      }
    }
    return { calls, fresh, after };
  }

  spreadMs(pages: number, perPage: CallPlan): number {
    const at = this.now();
    let spread = 0;
    for (const service of this.needed(perPage))
      spread = Math.max(spread, this.backlogMs(service, at) + this.costMs(service, pages * perPage[service.service]!));
    return Math.min(Math.ceil(spread), MAX_WAIT_MS);
  }

  releaseAll(): void {
    const at = this.now();
    this.held.clear();
    this.sharedAt.clear();
    for (const service of this.options.services) {
      const inFlight = at + service.latencyMs();
      if (this.busyUntilOf(service, at) > inFlight) this.busyUntil.set(service.service, inFlight);
    }
  }

  turnsHeld(): number {
    return this.held.size;
  }

  /**
   * The first moment every service the plan needs has its backlog down to half the budget; for
   * someone waiting, no later than half the budget from now (a restore's thousands of open pages
   * are not waited behind: a new reader's page fills in within a moment).
   */
  private startFor(plan: CallPlan, at: number, priority: boolean): number {
    let start = at;
    for (const service of this.needed(plan))
      start = Math.max(start, at + this.backlogMs(service, at) - this.options.budgetMs / 2);
    if (priority) start = Math.min(start, at + this.options.budgetMs / 2);
    return Math.min(Math.ceil(start), at + MAX_WAIT_MS);
  }

  private costMs(service: PacedService, calls: number): number {
    return (calls * service.latencyMs()) / service.capacity;
  }

  private needed(plan: CallPlan): PacedService[] {
    return this.options.services.filter((service) => (plan[service.service] ?? 0) > 0);
  }

  private backlogMs(service: PacedService, at: number): number {
    return Math.max(0, this.busyUntilOf(service, at) - at);
  }

  /**
   * When the calls reserved so far will be done, at the pace measured now. The backlog is calls
   * reserved, not time: reserved on the guess before the first call (a quarter of the timeout, often
   * twice the real latency), or on a slice of the cluster's budget that has since grown, it shrinks
   * when the pace turns out faster, so that later pages are not booked behind work that is not there.
   */
  private busyUntilOf(service: PacedService, at: number): number {
    const until = this.busyUntil.get(service.service) ?? 0;
    const pace = this.costMs(service, 1);
    const then = this.reckonedAt.get(service.service) ?? pace;
    this.reckonedAt.set(service.service, pace);
    if (until <= at || then === pace) return until;
    const rescaled = at + ((until - at) * pace) / then;
    this.busyUntil.set(service.service, rescaled);
    return rescaled;
  }

  private reserve(plan: CallPlan, from: number): void {
    for (const service of this.needed(plan)) {
      const start = Math.max(from, this.busyUntilOf(service, this.now()));
      this.busyUntil.set(service.service, start + this.costMs(service, plan[service.service]!));
    }
  }

  /** Gives back what a viewer's turn reserved: every later reservation may start that much sooner. */
  private giveBack(viewerKey: string, at: number): void {
    const turn = this.held.get(viewerKey);
    if (!turn) return;
    this.held.delete(viewerKey);
    for (const id of turn.shared) if (this.sharedAt.get(id) === turn.at) this.sharedAt.delete(id);
    for (const service of this.needed(turn.plan)) {
      const until = this.busyUntilOf(service, at);
      this.busyUntil.set(service.service, Math.max(at, until - this.costMs(service, turn.plan[service.service]!)));
    }
  }

  private sweep(at: number): void {
    if (at - this.sweptAt < SWEEP_EVERY_MS) return;
    this.sweptAt = at;
    for (const [id, bookedAt] of this.sharedAt) if (bookedAt < at - STALE_MS) this.sharedAt.delete(id);
    for (const [viewerKey, turn] of this.held) if (at - turn.at > ABANDONED_AFTER_MS) this.giveBack(viewerKey, at);
  }

  private signature(viewerKey: string, at: number): string {
    return createHmac('sha256', this.key).update(`${viewerKey}\n${at}`).digest('base64url').slice(0, 22);
  }

  private validTurn(token: string, viewerKey: string): boolean {
    const [atText, mac] = token.split('.');
    const at = Number(atText);
    if (!Number.isSafeInteger(at) || !mac) return false;
    const expected = Buffer.from(this.signature(viewerKey, at));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
    const t = this.now();
    return at <= t + EARLY_MS && t - at <= STALE_MS;
  }
}

export function createPacer(options: {
  services: readonly PacedService[];
  budgetMs: number;
  now?: () => number;
  key?: Buffer;
}): Pacer {
  return new FluidPacer(options);
}
