import { describe, expect, it } from 'vitest';
import { createPacer, type PacedService } from '../../server/upstream/pacing.js';

/** Two services of `capacity` calls at `latency` ms each, and a clock the test moves. */
function setup(capacity = 4, latency = 100, budgetMs = 400) {
  let now = 1_000_000;
  const services: PacedService[] = [
    { service: 'avatars', capacity, latencyMs: () => latency },
    { service: 'recommendations', capacity, latencyMs: () => latency },
  ];
  const pacer = createPacer({ services, budgetMs, now: () => now, key: Buffer.alloc(32, 7) });
  return { pacer, advance: (ms: number) => (now += ms), at: () => now };
}

/** A pacer of one call at a time with its 200 ms budget full, and the turn it gives `viewer`. */
function fullWithTurn(viewer = 'reader') {
  const paced = setup(1, 100, 100);
  for (let i = 0; i < 2; i++) paced.pacer.admit({ avatars: 1 }, `v${i}`);
  const deferred = paced.pacer.admit({ avatars: 1 }, viewer);
  if (deferred.admitted) throw new Error('expected a turn');
  return { ...paced, turn: deferred.turn };
}

describe('the pacer', () => {
  it("admits while the backlog is within the budget, then hands out turns in order at the services' pace", () => {
    const { pacer } = setup(4, 100, 400);
    // Each call costs latency / capacity = 25 ms of the service's time: 16 calls fill the 400 ms budget.
    const admitted = Array.from({ length: 17 }, (_, i) => pacer.admit({ recommendations: 1 }, `v${i}`));
    expect(admitted.every((a) => a.admitted)).toBe(true);
    const turns = Array.from({ length: 4 }, (_, i) => pacer.admit({ recommendations: 1 }, `late${i}`));
    expect(turns.some((a) => a.admitted)).toBe(false);
    const waits = turns.map((a) => (a.admitted ? -1 : a.turn.waitMs));
    // Backlog 425 ms: the first turn when it is down to half the budget, then one call's time apart.
    expect(waits).toEqual([225, 250, 275, 300]);
  });

  it('a turn brought back on time is admitted without asking again; a forged, foreign or stale one is not', () => {
    const { pacer, advance } = setup(1, 100, 100);
    pacer.admit({ avatars: 1 }, 'a');
    pacer.admit({ avatars: 1 }, 'b');
    for (let i = 0; i < 6; i++) pacer.admit({ avatars: 1 }, `ahead-${i}`); // turns ahead of c's
    const deferred = pacer.admit({ avatars: 1 }, 'c');
    if (deferred.admitted) throw new Error('expected a turn');
    const { token, waitMs } = deferred.turn;
    expect(pacer.admit({ avatars: 1 }, 'c', { token }).admitted).toBe(false); // too early
    advance(waitMs);
    expect(pacer.admit({ avatars: 1 }, 'c', { token })).toEqual({ admitted: true, byTurn: true });
    expect(pacer.admit({ avatars: 1 }, 'someone-else', { token }).admitted).toBe(false);
    const [at, mac] = token.split('.');
    expect(pacer.admit({ avatars: 1 }, 'c', { token: `${Number(at) - 1}.${mac}` }).admitted).toBe(false);
    advance(61_000);
    expect(pacer.admit({ avatars: 1 }, 'c', { token })).toEqual({ admitted: true, byTurn: false }); // stale: asked again, and the backlog is gone
  });

  it('a page load (someone waiting) is admitted only when its calls start almost at once', () => {
    const { pacer } = setup(4, 100, 400);
    for (let i = 0; i < 4; i++) pacer.admit({ avatars: 1 }, `v${i}`); // 100 ms of backlog
    expect(pacer.admit({ avatars: 1 }, 'reader', { foreground: true }).admitted).toBe(false);
    expect(pacer.admit({ avatars: 1 }, 'background').admitted).toBe(true);
  });

  it('needs no capacity for a render that makes no call, and the backlog drains with time', () => {
    const { pacer, advance } = setup(1, 100, 100);
    for (let i = 0; i < 5; i++) pacer.admit({ avatars: 1 }, `v${i}`);
    expect(pacer.admit({}, 'cached').admitted).toBe(true);
    expect(pacer.admit({ avatars: 1 }, 'x').admitted).toBe(false);
    advance(1000);
    expect(pacer.admit({ avatars: 1 }, 'y').admitted).toBe(true);
  });

  it('a kill of every page releases the turns handed out: the next restore does not queue behind them', () => {
    const { pacer } = setup(4, 100, 400);
    // A restore of 200 pages: turns reserved far ahead (200 calls x 25 ms = 5 s of backlog).
    for (let i = 0; i < 200; i++) pacer.admit({ avatars: 1, recommendations: 1 }, `page-${i}`);
    expect(pacer.spreadMs(100, { avatars: 1, recommendations: 1 })).toBeGreaterThan(5000);
    // Killed before their turns: none of them will come back.
    pacer.releaseAll();
    // Only what may be in flight (one latency) stays ahead of the next restore's 100 pages (2.5 s).
    expect(pacer.spreadMs(100, { avatars: 1, recommendations: 1 })).toBe(100 + 2500);
  });

  it('sizes the refetch window of a flip to the pages, the calls each needs and the capacity', () => {
    const { pacer } = setup(4, 100, 400);
    expect(pacer.spreadMs(1000, { avatars: 1, recommendations: 1 })).toBe(25_000);
    expect(pacer.spreadMs(1000, { recommendations: 2 })).toBe(50_000);
    expect(pacer.spreadMs(0, { recommendations: 1 })).toBe(0);
    expect(pacer.spreadMs(10_000_000, { recommendations: 1 })).toBe(600_000); // capped at ten minutes
  });

  it('gives a viewer that holds a turn the same turn again: a reload books nothing twice', () => {
    const { pacer, advance } = setup(1, 100, 100);
    for (let i = 0; i < 2; i++) pacer.admit({ avatars: 1 }, `v${i}`); // 200 ms of backlog: full
    const first = pacer.admit({ avatars: 1 }, 'reader');
    if (first.admitted) throw new Error('expected a turn');
    expect(pacer.turnsHeld()).toBe(1);
    const spread = pacer.spreadMs(1, { avatars: 1 });
    advance(10);
    const again = pacer.admit({ avatars: 1 }, 'reader');
    expect(again).toEqual({ admitted: false, turn: { token: first.turn.token, waitMs: first.turn.waitMs - 10 } });
    expect(pacer.spreadMs(1, { avatars: 1 })).toBe(spread - 10); // nothing more reserved
    expect(pacer.turnsHeld()).toBe(1);
    // Brought back: no longer held.
    advance(first.turn.waitMs);
    expect(pacer.admit({ avatars: 1 }, 'reader', { token: first.turn.token })).toEqual({
      admitted: true,
      byTurn: true,
    });
    expect(pacer.turnsHeld()).toBe(0);
  });

  it('a viewer holding a turn is served at once when there is room by then, and its turn given back', () => {
    const { pacer, advance } = setup(1, 100, 100);
    for (let i = 0; i < 2; i++) pacer.admit({ avatars: 1 }, `v${i}`); // 200 ms of backlog
    const turn = pacer.admit({ avatars: 1 }, 'reader');
    expect(turn.admitted).toBe(false);
    expect(pacer.spreadMs(0, { avatars: 1 })).toBe(300);
    advance(250); // 50 ms of backlog left: room
    expect(pacer.admit({ avatars: 1 }, 'reader')).toEqual({ admitted: true, byTurn: false });
    expect(pacer.turnsHeld()).toBe(0);
    // Its turn's 100 ms given back: only its new call is ahead, not the turn's reservation too.
    expect(pacer.spreadMs(0, { avatars: 1 })).toBe(100);
  });

  it('gives up on a turn not brought back 3 s after its time, and releases what it reserved', () => {
    const { pacer, advance } = setup(1, 100, 100);
    for (let i = 0; i < 2; i++) pacer.admit({ avatars: 1 }, `v${i}`);
    // 50 readers deferred who never come back (they closed the tab): 5 s of calls reserved, the
    // turns at 150 ms, 250 ms, ... 5,050 ms.
    for (let i = 0; i < 50; i++) pacer.admit({ avatars: 1 }, `bounced-${i}`);
    expect(pacer.turnsHeld()).toBe(50);
    expect(pacer.spreadMs(0, { avatars: 1 })).toBe(5200);
    advance(3_000);
    pacer.admit({ avatars: 1 }, 'anyone'); // 3 s after the first turn's time: still held
    expect(pacer.turnsHeld()).toBe(51);
    advance(500);
    pacer.admit({}, 'anyone-else'); // a request looks the held turns over: four given up on
    expect(pacer.turnsHeld()).toBe(47);
    // Each gave back its own call (100 ms), no more: 1,800 ms of backlog less 400.
    expect(pacer.spreadMs(0, { avatars: 1 })).toBe(1400);
    advance(5_000); // every turn's time, plus 3 s, is past
    expect(pacer.admit({ avatars: 1 }, 'next')).toEqual({ admitted: true, byTurn: false });
    expect(pacer.turnsHeld()).toBe(0);
    expect(pacer.spreadMs(0, { avatars: 1 })).toBe(100); // only the new call: nothing left behind
  });

  it("paces a render by the slowest resource it needs: this process's own loop included", () => {
    const pacer = createPacer({
      services: [
        { service: 'avatars', capacity: 32, latencyMs: () => 100 },
        { service: 'renderer', capacity: 1, latencyMs: () => 10 },
      ],
      budgetMs: 400,
      now: () => 0,
      key: Buffer.alloc(32, 1),
    });
    // 1,000 pages: the third party needs 1,000 x 100 / 32 = 3.1 s; this process 1,000 x 10 ms = 10 s.
    expect(pacer.spreadMs(1000, { avatars: 1, renderer: 1 })).toBe(10_000);
    expect(pacer.spreadMs(1000, { avatars: 1 })).toBe(3125);
    // 41 renders fill the loop's 400 ms budget long before the third party's.
    const admissions = Array.from({ length: 42 }, (_, i) => pacer.admit({ avatars: 1, renderer: 1 }, `v${i}`));
    expect(admissions.filter((a) => a.admitted)).toHaveLength(41);
  });

  it('a page load during a restore gets a turn within half the budget, ahead of the open pages, which move back by its calls', () => {
    const { pacer } = setup(4, 100, 400);
    // A restore: 400 pages booked, 10 s of calls.
    for (let i = 0; i < 400; i++) pacer.admit({ avatars: 1 }, `open-${i}`);
    const before = pacer.spreadMs(0, { avatars: 1 });
    const reader = pacer.admit({ avatars: 1 }, 'new-reader', { foreground: true });
    if (reader.admitted) throw new Error('expected a turn');
    expect(reader.turn.waitMs).toBe(200);
    expect(pacer.spreadMs(0, { avatars: 1 })).toBe(before + 25); // its call booked at the back
    const page = pacer.admit({ avatars: 1 }, 'open-late');
    if (page.admitted) throw new Error('expected a turn');
    expect(page.turn.waitMs).toBeGreaterThan(9_000);
    // An open page of a viewer who now reloads: the reload's earlier turn replaces the open page's.
    const reload = pacer.admit({ avatars: 1 }, 'open-late', { foreground: true });
    expect(reload).toMatchObject({ admitted: false, turn: { waitMs: 200 } });
    expect(pacer.turnsHeld()).toBe(400 - 17 + 2); // 17 admitted at once; the reload holds one turn, not two
  });

  it('looks the held turns over at most every 250 ms, and gives up on a turn only once it is more than 3 s past', () => {
    const { pacer, advance } = setup(1, 100, 100);
    for (let i = 0; i < 2; i++) pacer.admit({ avatars: 1 }, `v${i}`); // looked over now
    expect(pacer.admit({ avatars: 1 }, 'reader').admitted).toBe(false); // its turn in 150 ms
    advance(150 + 3000);
    pacer.admit({}, 'anyone'); // looked over: the turn is exactly 3 s past, still held
    expect(pacer.turnsHeld()).toBe(1);
    advance(100);
    pacer.admit({}, 'anyone'); // 3.1 s past, but looked over only 100 ms ago
    expect(pacer.turnsHeld()).toBe(1);
    advance(150);
    pacer.admit({}, 'anyone'); // 250 ms since: looked over again, and given up on
    expect(pacer.turnsHeld()).toBe(0);
  });

  it("a short render's turn reuses the viewer's held turn until it is given up on, then books a new one", () => {
    const { pacer, advance } = setup(1, 100, 100);
    for (let i = 0; i < 2; i++) pacer.admit({ avatars: 1 }, `v${i}`);
    const first = pacer.admit({ avatars: 1 }, 'reader');
    if (first.admitted) throw new Error('expected a turn');
    advance(first.turn.waitMs + 3000); // exactly 3 s past its time: still the reader's
    expect(pacer.turnFor({ avatars: 1 }, 'reader')).toEqual({ token: first.turn.token, waitMs: 0 });
    advance(100); // past 3 s (not yet looked over again): a turn of its own, now
    const next = pacer.turnFor({ avatars: 1 }, 'reader');
    expect(next.token).not.toBe(first.turn.token);
    expect(next.waitMs).toBe(0);
  });

  it("a short render's turn is not a page load's: it waits behind the open pages", () => {
    const { pacer } = setup(4, 100, 400);
    for (let i = 0; i < 400; i++) pacer.admit({ avatars: 1 }, `open-${i}`); // 10 s of calls booked
    expect(pacer.turnFor({ avatars: 1 }, 'short-render').waitMs).toBeGreaterThan(9_000);
    expect(pacer.turnFor({ avatars: 1 }, 'reader', { priority: true }).waitMs).toBe(200);
  });

  it('a turn is a time and a 22-character signature; one honoured from 500 ms early to 60 s late', () => {
    const { pacer, advance, turn } = fullWithTurn();
    const { token, waitMs } = turn;
    expect(token).toMatch(/^\d+\.[A-Za-z0-9_-]{22}$/);
    advance(waitMs - 501);
    expect(pacer.admit({}, 'reader', { token })).toEqual({ admitted: true, byTurn: false }); // too early: asked again
    advance(1);
    expect(pacer.admit({}, 'reader', { token })).toEqual({ admitted: true, byTurn: true });
    advance(500 + 60_000); // 60 s after its time: still honoured (a second tab, a slow network)
    expect(pacer.admit({}, 'reader', { token })).toEqual({ admitted: true, byTurn: true });
    advance(1);
    expect(pacer.admit({}, 'reader', { token })).toEqual({ admitted: true, byTurn: false });
  });

  it('a malformed turn is asked again, never an error: no signature, an empty one, a cut one', () => {
    const { pacer, advance, turn } = fullWithTurn();
    advance(turn.waitMs);
    const [at, mac] = turn.token.split('.') as [string, string];
    for (const token of [at, `${at}.`, `${at}.${mac.slice(0, 10)}`, `${at}.${mac}x`, 'nonsense']) {
      expect(pacer.admit({}, 'reader', { token })).toEqual({ admitted: true, byTurn: false });
    }
  });

  it("a turn brought back again (a second tab) is honoured, and leaves the viewer's newer turn held", () => {
    const { pacer, advance, turn } = fullWithTurn();
    advance(turn.waitMs);
    expect(pacer.admit({ avatars: 1 }, 'reader', { token: turn.token })).toEqual({ admitted: true, byTurn: true });
    expect(pacer.turnsHeld()).toBe(0);
    // The second tab brings the same turn: nothing is held for the viewer now, and it is honoured.
    expect(pacer.admit({ avatars: 1 }, 'reader', { token: turn.token })).toEqual({ admitted: true, byTurn: true });
    // A newer turn for the viewer, then the old one brought back once more: the newer stays held.
    for (let i = 0; i < 4; i++) pacer.admit({ avatars: 1 }, `w${i}`);
    const held = pacer.turnsHeld();
    expect(pacer.admit({ avatars: 1 }, 'reader').admitted).toBe(false);
    expect(pacer.turnsHeld()).toBe(held + 1);
    expect(pacer.admit({ avatars: 1 }, 'reader', { token: turn.token })).toEqual({ admitted: true, byTurn: true });
    expect(pacer.turnsHeld()).toBe(held + 1);
  });

  it('a kill with nothing booked leaves nothing booked (only a longer backlog is cut to one latency)', () => {
    const { pacer } = setup(4, 100, 400);
    pacer.releaseAll();
    expect(pacer.spreadMs(0, { avatars: 1, recommendations: 1 })).toBe(0);
    pacer.admit({ avatars: 1 }, 'one'); // 25 ms booked, under one latency: kept as it is
    pacer.releaseAll();
    expect(pacer.spreadMs(0, { avatars: 1 })).toBe(25);
  });

  it('reckons what is booked in calls: booked on a guess of the pace, it shrinks when the measured pace is faster', () => {
    let now = 1_000_000;
    // The guess before the first call (a quarter of a 3 s timeout), then the measured 300 ms; and a
    // slice of the cluster's budget that grows from one call at a time to two.
    let latency = 750;
    let capacity = 1;
    const services: PacedService[] = [
      {
        service: 'recommendations',
        get capacity() {
          return capacity;
        },
        latencyMs: () => latency,
      },
    ];
    const pacer = createPacer({ services, budgetMs: 1000, now: () => now, key: Buffer.alloc(32, 7) });
    for (let i = 0; i < 8; i++) pacer.admit({ recommendations: 1 }, `early-${i}`); // 6 s at the guess
    expect(pacer.spreadMs(0, { recommendations: 1 })).toBe(6000);
    now += 100;
    latency = 300;
    // What is left of the eight calls (7.87 of them) at 300 ms each, one at a time.
    expect(pacer.spreadMs(0, { recommendations: 1 })).toBe(2360);
    capacity = 2;
    expect(pacer.spreadMs(0, { recommendations: 1 })).toBe(1180);
    // A page asking now is booked after those calls, not after the 6 s they were first reckoned at.
    const late = pacer.admit({ recommendations: 1 }, 'late');
    // (Its turn: when that backlog is down to half the budget.)
    expect(late.admitted ? 0 : late.turn.waitMs).toBe(1180 - 1000 / 2);
  });

  it("books a shared call once: a page that needs one booked on another's turn comes after it, and books nothing", () => {
    const { pacer, advance } = setup(1, 100, 100);
    for (let i = 0; i < 2; i++) pacer.admit({ avatars: 1 }, `v${i}`); // 200 ms of backlog: full
    const authors = ['maya', 'theo'].map((key) => ({ service: 'avatars' as const, key }));
    const first = pacer.admit({}, 'first', { shared: authors });
    if (first.admitted) throw new Error('expected a turn');
    const booked = pacer.spreadMs(0, { avatars: 1 });
    expect(booked).toBe(400); // the two authors' calls on the first page's turn
    // Five more pages need the same authors: each comes once the first page's turn has made them.
    for (let i = 0; i < 5; i++) {
      const later = pacer.admit({}, `later-${i}`, { shared: authors });
      expect(later.admitted ? -1 : later.turn.waitMs).toBe(first.turn.waitMs + 100);
    }
    expect(pacer.spreadMs(0, { avatars: 1 })).toBe(booked); // booked once, not six times
    // Even with room now, a page that needs them waits for that turn rather than make them twice.
    advance(first.turn.waitMs - 50);
    expect(pacer.admit({}, 'reader', { foreground: true, shared: authors }).admitted).toBe(false);
    // The turn came and went: a page that still misses them (its page never came back) books them anew.
    advance(1000);
    const after = pacer.admit({}, 'much-later', { shared: authors });
    expect(after.admitted).toBe(true);
  });

  it('gives a viewer asking again its own turn back, its shared calls booked once, not waiting on itself', () => {
    const { pacer, advance } = setup(1, 100, 100);
    for (let i = 0; i < 2; i++) pacer.admit({ avatars: 1 }, `v${i}`); // 200 ms of backlog: full
    const own = [{ service: 'avatars' as const, key: 'viewer' }];
    const first = pacer.admit({}, 'viewer', { shared: own });
    if (first.admitted) throw new Error('expected a turn');
    const booked = pacer.spreadMs(0, { avatars: 1 });
    for (let i = 0; i < 3; i++) {
      advance(10);
      const again = pacer.admit({}, 'viewer', { shared: own });
      expect(again.admitted ? undefined : again.turn.token).toBe(first.turn.token);
      expect(pacer.spreadMs(0, { avatars: 1 })).toBe(booked - 10 * (i + 1));
    }
  });

  /** Avatars one at a time with 5 s of them booked; recommendations ten at a time and idle. */
  const busyAvatars = () => {
    const now = 1_000_000;
    const services: PacedService[] = [
      { service: 'avatars', capacity: 1, latencyMs: () => 100 },
      { service: 'recommendations', capacity: 10, latencyMs: () => 100 },
    ];
    const pacer = createPacer({ services, budgetMs: 100, now: () => now, key: Buffer.alloc(32, 7) });
    for (let i = 0; i < 50; i++) pacer.admit({ avatars: 1 }, `v${i}`);
    return pacer;
  };

  it('a page waiting for a shared call holds no other service idle, and someone waiting books it again rather than wait long', () => {
    const pacer = busyAvatars();
    const author = [{ service: 'avatars' as const, key: 'author' }];
    const booker = pacer.admit({}, 'booker', { shared: author });
    const dependent = pacer.admit({ recommendations: 1 }, 'dependent', { shared: author });
    // It comes after the author's avatar is made, but its recommendation does not push others' back.
    expect(dependent.admitted ? 0 : dependent.turn.waitMs).toBeGreaterThan(booker.admitted ? 0 : booker.turn.waitMs);
    expect(pacer.spreadMs(0, { recommendations: 1 })).toBe(10); // its one call, 100 ms / 10, from now
    expect(pacer.admit({ recommendations: 1 }, 'unrelated').admitted).toBe(true);
    // A reader waiting for a page: a turn within half the budget, the avatar booked for it again.
    const reader = pacer.admit({ recommendations: 1 }, 'reader', { foreground: true, shared: author });
    expect(reader.admitted ? 0 : reader.turn.waitMs).toBeLessThanOrEqual(50);
  });

  it('books a shared call again once its turn has passed, and pages after that wait for the new booking', () => {
    const { pacer, advance } = setup(1, 100, 100);
    for (let i = 0; i < 2; i++) pacer.admit({ avatars: 1 }, `v${i}`);
    const author = [{ service: 'avatars' as const, key: 'author' }];
    const first = pacer.admit({}, 'first', { shared: author });
    advance((first.admitted ? 0 : first.turn.waitMs) + 500); // its turn came and went (the call came out short)
    for (let i = 0; i < 2; i++) pacer.admit({ avatars: 1 }, `w${i}`);
    const again = pacer.admit({}, 'again', { shared: author });
    const booked = pacer.spreadMs(0, { avatars: 1 });
    const after = pacer.admit({}, 'after', { shared: author });
    expect(after.admitted ? 0 : after.turn.waitMs).toBe((again.admitted ? 0 : again.turn.waitMs) + 100);
    expect(pacer.spreadMs(0, { avatars: 1 })).toBe(booked);
  });

  it("books a page's calls in each service's own queue: a turn set by a busy service pushes no idle one back", () => {
    const pacer = busyAvatars();
    const page = pacer.admit({ avatars: 1, recommendations: 1 }, 'page');
    expect(page.admitted ? 0 : page.turn.waitMs).toBe(4950);
    expect(pacer.spreadMs(0, { recommendations: 1 })).toBe(10); // its one call, not 5 s of nothing
    expect(pacer.admit({ recommendations: 1 }, 'recommendations-only').admitted).toBe(true);
  });

  it('keeps a shared call booked on a turn still to come when the held turns are looked over', () => {
    const { pacer, advance } = setup(1, 100, 100);
    for (let i = 0; i < 10; i++) pacer.admit({ avatars: 1 }, `v${i}`); // 2 admitted, 8 turns
    const author = [{ service: 'avatars' as const, key: 'author' }];
    const first = pacer.admit({}, 'first', { shared: author });
    if (first.admitted) throw new Error('expected a turn');
    advance(300); // looked over since, the first page's turn still to come
    pacer.admit({}, 'anyone');
    const booked = pacer.spreadMs(0, { avatars: 1 });
    const later = pacer.admit({}, 'later', { shared: author });
    expect(later.admitted ? -1 : later.turn.waitMs).toBe(first.turn.waitMs - 300 + 100);
    expect(pacer.spreadMs(0, { avatars: 1 })).toBe(booked); // not booked a second time
  });

  it('a shared call whose turn was replaced by an earlier one without it is booked again by the next page that needs it', () => {
    const { pacer } = setup(1, 100, 100);
    for (let i = 0; i < 20; i++) pacer.admit({ avatars: 1 }, `v${i}`);
    const author = [{ service: 'avatars' as const, key: 'author' }];
    const far = pacer.admit({}, 'reader', { shared: author });
    if (far.admitted) throw new Error('expected a turn');
    // The same viewer now waits for another page, one without the author: its far turn is replaced.
    const near = pacer.admit({}, 'reader', { foreground: true });
    expect(near.admitted).toBe(true);
    const booked = pacer.spreadMs(0, { avatars: 1 });
    const other = pacer.admit({}, 'other', { shared: author });
    if (other.admitted) throw new Error('expected a turn');
    // No turn to come makes the author's call now: this page books it, rather than wait for a gone turn.
    expect(pacer.spreadMs(0, { avatars: 1 })).toBe(booked + 100);
  });

  it('a viewer moving its own turn forward keeps the earlier booking someone waiting made of its shared call', () => {
    const { pacer, advance } = setup(1, 100, 100);
    for (let i = 0; i < 50; i++) pacer.admit({ avatars: 1 }, `v${i}`); // 5 s booked
    const author = [{ service: 'avatars' as const, key: 'author' }];
    expect(pacer.admit({}, 'booker', { shared: author }).admitted).toBe(false); // booked on a far turn
    const reader = pacer.admit({}, 'reader', { foreground: true, shared: author }); // booked again, in 50 ms
    expect(reader.admitted ? -1 : reader.turn.waitMs).toBe(50);
    advance(20);
    // The booker now waits for its page too: its own turn comes in 50 ms from now, after the reader's.
    const booker = pacer.admit({}, 'booker', { foreground: true, shared: author });
    expect(booker.admitted ? -1 : booker.turn.waitMs).toBe(50);
    // A later page waits for the earliest booking (the reader's, 30 ms from now), plus one call.
    const later = pacer.admit({}, 'later', { shared: author });
    expect(later.admitted ? -1 : later.turn.waitMs).toBe(30 + 100);
  });

  it("a viewer's held turn is not given again when the page now needs a shared call made only after it", () => {
    const { pacer } = setup(1, 100, 100);
    for (let i = 0; i < 10; i++) pacer.admit({ avatars: 1 }, `v${i}`);
    const held = pacer.admit({ avatars: 1 }, 'reader');
    if (held.admitted) throw new Error('expected a turn');
    const author = [{ service: 'avatars' as const, key: 'author' }];
    const booker = pacer.admit({}, 'booker', { shared: author });
    if (booker.admitted) throw new Error('expected a turn');
    expect(booker.turn.waitMs).toBeGreaterThan(held.turn.waitMs);
    const again = pacer.admit({ avatars: 1 }, 'reader', { shared: author });
    if (again.admitted) throw new Error('expected a turn');
    expect(again.turn.token).not.toBe(held.turn.token);
    expect(again.turn.waitMs).toBeGreaterThanOrEqual(booker.turn.waitMs + 100);
  });

  it("a short render's turn with no shared calls waits for nobody else's shared calls", () => {
    const { pacer } = setup(1, 100, 100);
    for (let i = 0; i < 10; i++) pacer.admit({ avatars: 1 }, `v${i}`);
    expect(pacer.turnFor({ avatars: 1 }, 'a').waitMs).toBeGreaterThan(0);
    expect(pacer.turnFor({}, 'b').waitMs).toBe(0);
  });

  it("waits for a shared call for that call's own service's latency, and books one of a resource it does not pace as free", () => {
    let now = 1_000_000;
    const services: PacedService[] = [
      { service: 'avatars', capacity: 1, latencyMs: () => 100 },
      { service: 'recommendations', capacity: 1, latencyMs: () => 300 },
    ];
    const pacer = createPacer({ services, budgetMs: 100, now: () => now, key: Buffer.alloc(32, 7) });
    expect(pacer.admit({ recommendations: 1 }, 'first').admitted).toBe(true); // 300 ms booked
    const shared = [{ service: 'recommendations' as const, key: 'related' }];
    const booker = pacer.admit({}, 'booker', { shared });
    if (booker.admitted) throw new Error('expected a turn');
    const later = pacer.admit({}, 'later', { shared });
    expect(later.admitted ? -1 : later.turn.waitMs).toBe(booker.turn.waitMs + 300);
    now += 1;
    expect(pacer.admit({}, 'unpaced', { shared: [{ service: 'renderer', key: 'k' }] }).admitted).toBe(true);
  });

  it('a shared call booked on a turn that comes now is booked again, once, by the pages asking now', () => {
    const { pacer, advance } = setup(1, 100, 100);
    for (let i = 0; i < 2; i++) pacer.admit({ avatars: 1 }, `v${i}`);
    const author = [{ service: 'avatars' as const, key: 'author' }];
    const booker = pacer.admit({}, 'booker', { shared: author });
    if (booker.admitted) throw new Error('expected a turn');
    advance(booker.turn.waitMs); // its turn is now: not a turn to come
    const booked = pacer.spreadMs(0, { avatars: 1 });
    const second = pacer.admit({}, 'second', { shared: author });
    if (second.admitted) throw new Error('expected a turn');
    expect(pacer.spreadMs(0, { avatars: 1 })).toBe(booked + 100);
    const third = pacer.admit({}, 'third', { shared: author });
    expect(third.admitted ? -1 : third.turn.waitMs).toBe(second.turn.waitMs + 100);
    expect(pacer.spreadMs(0, { avatars: 1 })).toBe(booked + 100);
  });

  it('someone waiting waits for a shared call done within half the budget, and books one done later again', () => {
    const author = [{ service: 'avatars' as const, key: 'author' }];
    /** 425 ms booked, and the author's call on a turn 225 ms from now. */
    const booked = () => {
      const paced = setup(4, 100, 400);
      for (let i = 0; i < 17; i++) paced.pacer.admit({ avatars: 1 }, `v${i}`);
      const booker = paced.pacer.admit({}, 'booker', { shared: author });
      expect(booker.admitted ? -1 : booker.turn.waitMs).toBe(225);
      return paced;
    };
    const soon = booked();
    soon.advance(125); // the call done 200 ms from now: half the budget
    const before = soon.pacer.spreadMs(0, { avatars: 1 });
    const waits = soon.pacer.admit({}, 'reader', { foreground: true, shared: author });
    expect(waits.admitted ? -1 : waits.turn.waitMs).toBe(200);
    expect(soon.pacer.spreadMs(0, { avatars: 1 })).toBe(before); // nothing booked
    const late = booked(); // the call done 325 ms from now: booked again, within half the budget
    const spread = late.pacer.spreadMs(0, { avatars: 1 });
    const again = late.pacer.admit({}, 'reader', { foreground: true, shared: author });
    expect(again.admitted ? -1 : again.turn.waitMs).toBe(200);
    expect(late.pacer.spreadMs(0, { avatars: 1 })).toBe(spread + 25);
  });

  it('books a shared call named twice by one page once', () => {
    const { pacer } = setup(1, 100, 100);
    for (let i = 0; i < 2; i++) pacer.admit({ avatars: 1 }, `v${i}`);
    const booked = pacer.spreadMs(0, { avatars: 1 });
    const maya = { service: 'avatars' as const, key: 'maya' };
    expect(pacer.admit({}, 'page', { shared: [maya, maya] }).admitted).toBe(false);
    expect(pacer.spreadMs(0, { avatars: 1 })).toBe(booked + 100);
  });
});
