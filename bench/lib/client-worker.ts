/**
 * A worker process holding many light browsers: raw WebSockets speaking the Engine.IO v4 /
 * Socket.IO v5 protocol (open, connect, ping/pong, events), a few KB each instead of a full
 * browser. Each one runs the page's own policy, `public/js/live-sync.js` (the module feed.js
 * runs), with the DOM replaced by counters: on a kill it makes no request, on a restore it
 * fetches its live region when the server's pacing says, follows turns, and retries as the page
 * does. So the requests it makes are the requests a page makes.
 *
 * Parent -> worker: { type: 'connect', url, viewers: string[] } | { type: 'collect' } | { type: 'state' } | { type: 'close' }
 * Worker -> parent: { type: 'ready', count } | { type: 'received', ... } | { type: 'state', ... }
 */
import WebSocket from 'ws';
import { createLiveSync, fetchFragment } from '../../public/js/live-sync.js';

const now = () => performance.timeOrigin + performance.now();

/** What one page shows: killed, live and whole, live but short (fallbacks), or waiting for its content. */
type Content = 'killed' | 'live' | 'short' | 'waiting';

interface Browser {
  socket: WebSocket;
  times: number[];
  values: unknown[];
  content: Content;
  /** When the page last became whole (a live fragment with every avatar live). */
  liveAt: number | undefined;
}

const browsers: Browser[] = [];
/** Every request a page made to our server since the last collect, by kind. */
let requests = { fragments: 0, waits: 0, failures: 0 };
let kills = 0;

function open(url: string, viewer: string): Promise<Browser> {
  return new Promise((resolve, reject) => {
    const target = `${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
    const socket = new WebSocket(target, { headers: viewer ? { cookie: `viewer=${viewer}` } : {}, perMessageDeflate: false });
    const browser: Browser = { socket, times: [], values: [], content: 'live', liveAt: undefined };
    const sync = createLiveSync({
      live: true, // as if the page had been rendered live; the snapshot corrects it at once
      effects: {
        kill: () => {
          kills++;
          browser.content = 'killed';
        },
        fetchFragment: async (turn) => {
          try {
            const answer = await fetchFragment(`${url}/fragments/feed`, turn, { headers: { cookie: `viewer=${viewer}` } });
            if (answer.kind === 'wait') requests.waits++;
            else requests.fragments++;
            return answer;
          } catch (error) {
            requests.failures++;
            throw error;
          }
        },
        swap: (html) => {
          const whole = html.includes('data-source="live"') && !html.includes('fallback-avatar.svg');
          browser.content = whole ? 'live' : 'short';
          if (whole) browser.liveAt = now();
        },
        catchingUp: (waitMs) => {
          if (waitMs !== undefined && browser.content === 'killed') browser.content = 'waiting';
          // Done waiting without a whole live region (it gave up after its retries): short.
          if (waitMs === undefined && browser.content === 'waiting') browser.content = 'short';
        },
        theme: () => undefined,
        say: () => undefined,
      },
    });
    socket.on('message', (data) => {
      const text = data.toString();
      if (text.startsWith('0')) socket.send('40'); // engine open -> socket.io connect
      else if (text === '2') socket.send('3'); // ping -> pong
      else if (text.startsWith('42')) {
        const [event, payload] = JSON.parse(text.slice(2));
        if (event === 'flag_snapshot') {
          sync.snapshot(payload);
          if (!sync.live) browser.content = 'killed';
          resolve(browser);
        } else if (event === 'flag_update') {
          browser.times.push(now());
          browser.values.push(payload.value);
          sync.update(payload);
        }
      }
    });
    socket.on('error', reject);
  });
}

process.on('message', async (message: { type: string; url?: string; viewers?: string[] }) => {
  if (message.type === 'connect') {
    const viewers = message.viewers!;
    // In batches: a burst of thousands of handshakes at once only measures the accept queue.
    for (let i = 0; i < viewers.length; i += 100) {
      browsers.push(...(await Promise.all(viewers.slice(i, i + 100).map((viewer) => open(message.url!, viewer)))));
    }
    process.send!({ type: 'ready', count: browsers.length });
  } else if (message.type === 'collect') {
    process.send!({ type: 'received', times: browsers.map((b) => b.times), values: browsers.map((b) => b.values), requests, kills });
    for (const browser of browsers) {
      browser.times = [];
      browser.values = [];
    }
    requests = { fragments: 0, waits: 0, failures: 0 };
    kills = 0;
  } else if (message.type === 'state') {
    const count = (content: Content) => browsers.filter((b) => b.content === content).length;
    process.send!({
      type: 'state',
      killed: count('killed'),
      live: count('live'),
      short: count('short'),
      waiting: count('waiting'),
      lastLiveAt: Math.max(0, ...browsers.map((b) => b.liveAt ?? 0)),
    });
  } else if (message.type === 'close') {
    for (const browser of browsers) browser.socket.terminate();
    process.exit(0);
  }
});
