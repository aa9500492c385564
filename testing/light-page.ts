/**
 * A feed page without the DOM: the page's own policy (`public/js/live-sync.js`, the module
 * `public/js/feed.js` runs) with counters for effects. The benchmarks' worker processes and the
 * tests feed it Socket.IO events from their own transport (raw WebSockets there, socket.io-client
 * here); either way it makes exactly the requests a page makes, and says what the page would show.
 */
import { io, type Socket } from 'socket.io-client';
import type { FlagSnapshot, FlagUpdate } from '../protocol/wire.js';
import { createLiveSync, fetchFragment } from '../public/js/live-sync.js';

/** What a page shows: killed, live and whole, live but short (fallbacks), or waiting for its content. */
export type PageContent = 'killed' | 'live' | 'short' | 'waiting';

export interface LightPage {
  readonly viewer: string;
  content(): PageContent;
  /** When the page last became whole (a live fragment with every avatar live), on `clock`. */
  readonly liveAt: number | undefined;
  /** Requests the page made to our server: fragments served, turns handed out (503), failures. */
  readonly requests: { fragments: number; waits: number; failures: number };
  /** Kills applied in place (each without a request). */
  readonly kills: number;
  /** Every wait it showed while catching up (ms to its next try). */
  readonly waits: number[];
  /** The wait of every turn the server handed it (Refetch-After-Ms), in order. */
  readonly turns: number[];
  /** Whether the page has a refetch to come: scheduled (a spread, a turn, a retry) or in flight. */
  busy(): boolean;
  /** Zeroes the counters (requests, kills, waits). */
  resetCounters(): void;
  /** The page was rendered live but short: it comes back on the turn it was given, as feed.js does. */
  comeBackOn(turn: { token: string; waitMs: number }): void;
  /** Resolves once the page has nothing left to do (no refetch scheduled or in flight). */
  settled(): Promise<void>;
  /** The page's Socket.IO events. */
  snapshot(values: Record<string, unknown>): void;
  update(update: { key: string; value: unknown; refetchWithinMs?: number }): void;
}

/**
 * The turn a page was rendered with, when it came out live but short: what feed.js reads from the
 * catching-up banner's `data-turn` and `data-turn-wait-ms`.
 */
export function turnOfPage(html: string): { token: string; waitMs: number } | undefined {
  const banner = /<div [^>]*id="catching-up-banner"[^>]*>/.exec(html)?.[0];
  const token = banner && /data-turn="([^"]+)"/.exec(banner)?.[1];
  const waitMs = banner && /data-turn-wait-ms="(\d+)"/.exec(banner)?.[1];
  return token ? { token, waitMs: Number(waitMs ?? 1000) } : undefined;
}

/**
 * A page load as a browser does it: GET / for `viewer`, and when the page came out live but short,
 * its turns followed (live-sync's own policy) until it is whole or gives up.
 */
export async function loadPage(
  url: string,
  viewer: string,
): Promise<{ status: number; loadMs: number; wholeMs: number; page: LightPage }> {
  const started = performance.now();
  const response = await fetch(`${url}/?user=${encodeURIComponent(viewer)}`);
  const html = await response.text();
  const loadMs = performance.now() - started;
  const page = createLightPage(url, viewer);
  const turn = turnOfPage(html);
  if (turn) {
    page.comeBackOn(turn);
    await page.settled();
  }
  return { status: response.status, loadMs, wholeMs: performance.now() - started, page };
}

/**
 * `random`: where the page draws its moment in a restore's refetch window (live-sync's own
 * `Math.random` when not given). A benchmark gives each viewer a seeded one, so that the servers it
 * compares meet the same pages refetching at the same moments.
 */
export function createLightPage(
  url: string,
  viewer: string,
  clock: () => number = () => performance.timeOrigin + performance.now(),
  random?: () => number,
): LightPage {
  let content: PageContent = 'live';
  // The page's one timer (live-sync keeps at most one) and its fetches in flight.
  let scheduled = false;
  let fetching = 0;
  const page = {
    viewer,
    content: () => content,
    busy: () => scheduled || fetching > 0,
    liveAt: undefined as number | undefined,
    requests: { fragments: 0, waits: 0, failures: 0 },
    kills: 0,
    waits: [] as number[],
    turns: [] as number[],
    resetCounters() {
      page.requests = { fragments: 0, waits: 0, failures: 0 };
      page.kills = 0;
      page.waits = [];
      page.turns = [];
    },
    comeBackOn(turn: { token: string; waitMs: number }) {
      content = 'short';
      sync.comeBackOn(turn);
    },
    async settled() {
      while (page.busy()) await new Promise((resolve) => setTimeout(resolve, 5));
    },
    snapshot(values: FlagSnapshot) {
      sync.snapshot(values);
      if (!sync.live) content = 'killed';
    },
    update(update: FlagUpdate) {
      sync.update(update);
    },
  };
  const sync = createLiveSync({
    random,
    live: true, // as if the page had been rendered live; the snapshot corrects it at once
    setTimer: (run, ms) => {
      scheduled = true;
      return setTimeout(() => {
        scheduled = false;
        run();
      }, ms);
    },
    clearTimer: (handle) => {
      clearTimeout(handle);
      scheduled = false;
    },
    effects: {
      kill: () => {
        page.kills++;
        content = 'killed';
      },
      fetchFragment: async (turn) => {
        fetching++;
        try {
          const answer = await fetchFragment(`${url}/fragments/feed`, turn, {
            headers: { cookie: `viewer=${viewer}` },
          });
          page.requests[answer.kind === 'wait' ? 'waits' : 'fragments']++;
          if (answer.turn) page.turns.push(answer.turn.waitMs);
          return answer;
        } catch (error) {
          page.requests.failures++;
          throw error;
        } finally {
          fetching--;
        }
      },
      swap: (html) => {
        const whole = html.includes('data-source="live"') && !html.includes('fallback-avatar.svg');
        content = whole ? 'live' : 'short';
        if (whole) page.liveAt = clock();
      },
      catchingUp: (waitMs) => {
        if (waitMs !== undefined) {
          page.waits.push(waitMs);
          if (content === 'killed') content = 'waiting';
        } else if (content === 'waiting') {
          content = 'short'; // done waiting without a whole live region: it gave up after its retries
        }
      },
      theme: () => undefined,
      say: () => undefined,
    },
  });
  return page;
}

/**
 * An open feed page of `viewer` at `url`, on a Socket.IO connection of its own with the viewer's
 * cookie (reconnecting as the page's own does): resolves once its first snapshot is in.
 */
export async function connectLightPage(url: string, viewer: string): Promise<{ page: LightPage; socket: Socket }> {
  const page = createLightPage(url, viewer);
  const socket = io(url, { transports: ['websocket'], extraHeaders: { cookie: `viewer=${viewer}` }, forceNew: true });
  socket.on('flag_snapshot', (values: FlagSnapshot) => page.snapshot(values));
  socket.on('flag_update', (update: FlagUpdate) => page.update(update));
  await new Promise<void>((resolve) => socket.once('flag_snapshot', () => resolve()));
  return { page, socket };
}
