/**
 * A worker process holding many light browsers: raw WebSockets speaking the Engine.IO v4 /
 * Socket.IO v5 protocol (open, connect, ping/pong, events), a few KB each instead of a full
 * browser. Each one is a light page (./light-page.ts): the page's own policy,
 * `public/js/live-sync.js`, with counters for the DOM. On a kill it makes no request, on a restore
 * it fetches its live region when the server's pacing says, follows turns, and retries as the
 * page does. So the requests it makes are the requests a page makes.
 *
 * Parent -> worker: { type: 'connect', url, viewers: string[], spreadMs } | { type: 'collect' } | { type: 'arm', every, quietMs } | { type: 'state' } | { type: 'close' }
 * Worker -> parent: { type: 'ready', count } | { type: 'received', ... } | { type: 'armed' } then { type: 'arrived', times, heartbeats, gcMs } | { type: 'state', ... }
 */
import { hash } from 'node:crypto';
import { PerformanceObserver } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import WebSocket from 'ws';
import { createLightPage, type LightPage, type PageContent } from '../../testing/light-page.js';

interface Browser {
  socket: WebSocket;
  page: LightPage;
  times: number[];
  values: unknown[];
}

const browsers: Browser[] = [];
/** The widest refetch window an update carried since the last collect (0: none carried one). */
let widestWindowMs = 0;

/**
 * A flip being timed (`arm`): the browsers that have had an update since, and when the last one
 * arrived. The worker answers `arrived` by itself, once every browser has one (`every`) or none has
 * come for `quietMs`, so that nothing asks it anything while the update is arriving.
 */
let armed:
  | {
      every: boolean;
      quietMs: number;
      reached: number;
      lastAt: number;
      heartbeats: number;
      /** When it was armed (performance.now()). */
      since: number;
      timer?: NodeJS.Timeout;
    }
  | undefined;

/** The browsers' own GC pauses of the last minute: time their core was not reading sockets. */
const pauses: { start: number; ms: number }[] = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) pauses.push({ start: entry.startTime, ms: entry.duration });
  while (pauses.length > 0 && pauses[0]!.start < performance.now() - 60_000) pauses.shift();
}).observe({ entryTypes: ['gc'] });

/** Waiting for every browser: answered anyway after this long with no update (the parent then says who missed it). */
const EVERY_GIVES_UP_MS = 10_000;

function arrived(): void {
  if (!armed) return;
  const { timer, heartbeats, since } = armed;
  const until = performance.now();
  clearInterval(timer);
  armed = undefined;
  const times = browsers.map((b) => b.times);
  for (const browser of browsers) browser.times = [];
  // A pause reaches the observer a turn or more after it ends: the last one of the arrival too.
  setTimeout(() => {
    const during = pauses.filter(({ start }) => start >= since && start < until);
    process.send!({ type: 'arrived', times, heartbeats, gcMs: during.reduce((sum, { ms }) => sum + ms, 0) });
  }, 20);
}

/**
 * A page draws its refetch moments from a generator seeded by its viewer's name and its place in
 * this worker (a viewer's tabs draw apart): the same page in another server's fleet draws the same
 * ones (common random numbers), so that which pages refetch while an update is still arriving is not
 * one more difference between the servers compared.
 */
function seededRandom(viewer: string, tab: number): () => number {
  const rng = xoroshiro128plus(hash('sha256', `${viewer}#${tab}`, 'buffer').readInt32LE(0));
  return () => uniformFloat64(rng);
}

function open(url: string, viewer: string, tab: number): Promise<Browser> {
  return new Promise((resolve, reject) => {
    const target = `${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
    const socket = new WebSocket(target, {
      headers: viewer ? { cookie: `viewer=${viewer}` } : {},
      perMessageDeflate: false,
    });
    const browser: Browser = {
      socket,
      page: createLightPage(url, viewer, undefined, seededRandom(viewer, tab)),
      times: [],
      values: [],
    };
    socket.on('message', (data: Buffer) => {
      const text = data.toString();
      if (text.startsWith('0'))
        socket.send('40'); // engine open -> socket.io connect
      else if (text === '2') {
        socket.send('3'); // ping -> pong
        if (armed) armed.heartbeats++;
      } else if (text.startsWith('42')) {
        const [event, payload] = JSON.parse(text.slice(2));
        if (event === 'flag_snapshot') {
          browser.page.snapshot(payload);
          resolve(browser);
        } else if (event === 'flag_update') {
          browser.times.push(performance.timeOrigin + performance.now());
          if (armed) {
            armed.lastAt = performance.now();
            if (browser.times.length === 1 && ++armed.reached === browsers.length && armed.every) arrived();
          }
          browser.values.push(payload.value);
          if (typeof payload.refetchWithinMs === 'number')
            widestWindowMs = Math.max(widestWindowMs, payload.refetchWithinMs);
          browser.page.update(payload);
        }
      }
    });
    socket.on('error', reject);
  });
}

process.on(
  'message',
  async (message: {
    type: string;
    url?: string;
    viewers?: string[];
    spreadMs?: number;
    every?: boolean;
    quietMs?: number;
  }) => {
    if (message.type === 'connect') {
      const viewers = message.viewers!;
      // In batches: a burst of thousands of handshakes at once only measures the accept queue. Spread,
      // a batch every 100 ms, as many as fill the spread.
      const ticks = Math.max(1, Math.floor((message.spreadMs ?? 0) / 100));
      const batch = Math.min(100, Math.max(1, Math.ceil(viewers.length / ticks)));
      const started = performance.now();
      for (let i = 0; i < viewers.length; i += batch) {
        if (message.spreadMs) {
          const due = started + (i / batch) * 100;
          if (due > performance.now()) await sleep(due - performance.now());
        }
        browsers.push(
          ...(await Promise.all(viewers.slice(i, i + batch).map((viewer, j) => open(message.url!, viewer, i + j)))),
        );
      }
      process.send!({ type: 'ready', count: browsers.length });
    } else if (message.type === 'collect') {
      const requests = { fragments: 0, waits: 0, failures: 0 };
      let kills = 0;
      for (const { page } of browsers) {
        requests.fragments += page.requests.fragments;
        requests.waits += page.requests.waits;
        requests.failures += page.requests.failures;
        kills += page.kills;
        page.resetCounters();
      }
      process.send!({
        type: 'received',
        times: browsers.map((b) => b.times),
        values: browsers.map((b) => b.values),
        requests,
        kills,
        windowMs: widestWindowMs,
      });
      widestWindowMs = 0;
      for (const browser of browsers) {
        browser.times = [];
        browser.values = [];
      }
    } else if (message.type === 'arm') {
      for (const browser of browsers) browser.times = [];
      const quietMs = message.quietMs ?? 300;
      armed = {
        every: message.every ?? true,
        quietMs,
        reached: 0,
        lastAt: performance.now(),
        heartbeats: 0,
        since: performance.now(),
      };
      // Quiet for quietMs since the last update (or since armed, when none comes): a cheap check, a
      // few times a quiet period. Waiting for every browser, a pause that long is no end: only 10 s is.
      armed.timer = setInterval(() => {
        if (armed && performance.now() - armed.lastAt >= (armed.every ? EVERY_GIVES_UP_MS : armed.quietMs)) arrived();
      }, quietMs / 4);
      process.send!({ type: 'armed' });
    } else if (message.type === 'state') {
      const count = (content: PageContent) => browsers.filter((b) => b.page.content() === content).length;
      process.send!({
        type: 'state',
        killed: count('killed'),
        live: count('live'),
        short: count('short'),
        waiting: count('waiting'),
        busy: browsers.filter((b) => b.page.busy()).length,
        lastLiveAt: Math.max(0, ...browsers.map((b) => b.page.liveAt ?? 0)),
      });
    } else if (message.type === 'close') {
      for (const browser of browsers) browser.socket.terminate();
      process.exit(0);
    }
  },
);
