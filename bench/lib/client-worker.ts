/**
 * A worker process holding many light browsers: raw WebSockets speaking the Engine.IO v4 /
 * Socket.IO v5 protocol (open, connect, ping/pong, events), a few KB each instead of a full
 * socket.io-client. It tells its parent when every socket has its snapshot, and records when
 * each flag_update arrives (wall clock, comparable across processes on one machine).
 *
 * With `refetchJitterMs`, a browser also does what the real page does on a restore (the kill
 * switch back to true): waits a random delay up to that, then GETs /fragments/feed, and records
 * when the fragment arrived.
 *
 * Parent -> worker: { type: 'connect', url, viewers: string[], refetchJitterMs? } | { type: 'collect' } | { type: 'close' }
 * Worker -> parent: { type: 'ready', count } | { type: 'received', times, values, fragments, fragmentErrors }
 */
import WebSocket from 'ws';

const now = () => performance.timeOrigin + performance.now();

interface Browser {
  socket: WebSocket;
  times: number[];
  values: unknown[];
  snapshot: boolean;
}

const browsers: Browser[] = [];
let fragments: number[] = [];
let fragmentErrors = 0;
let fragmentsLive = 0;

/** What public/js/feed.js does on a restore: a random delay, then the fragment, retried up to 4 times with backoff. */
function refetch(url: string, viewer: string, jitterMs: number) {
  const attempt = async (tries: number) => {
    try {
      const response = await fetch(`${url}/fragments/feed`, { headers: { cookie: `viewer=${viewer}` } });
      const html = await response.text();
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      if (!html.includes('data-show-avatars="true"')) fragmentErrors++;
      else if (html.includes('data-source="live"')) fragmentsLive++;
      fragments.push(now());
    } catch {
      if (tries >= 4) fragmentErrors++;
      else setTimeout(() => void attempt(tries + 1), 500 * 2 ** tries);
    }
  };
  setTimeout(() => void attempt(0), Math.random() * jitterMs);
}

function open(url: string, viewer: string, refetchJitterMs?: number): Promise<Browser> {
  return new Promise((resolve, reject) => {
    const target = `${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
    const socket = new WebSocket(target, { headers: viewer ? { cookie: `viewer=${viewer}` } : {}, perMessageDeflate: false });
    const browser: Browser = { socket, times: [], values: [], snapshot: false };
    socket.on('message', (data) => {
      const text = data.toString();
      if (text.startsWith('0')) socket.send('40'); // engine open -> socket.io connect
      else if (text === '2') socket.send('3'); // ping -> pong
      else if (text.startsWith('42')) {
        const [event, payload] = JSON.parse(text.slice(2));
        if (event === 'flag_snapshot') {
          browser.snapshot = true;
          resolve(browser);
        } else if (event === 'flag_update') {
          browser.times.push(now());
          browser.values.push(payload.value);
          if (refetchJitterMs !== undefined && payload.key === 'show-avatars-and-reccs' && payload.value === true) {
            refetch(url, viewer, refetchJitterMs);
          }
        }
      }
    });
    socket.on('error', reject);
  });
}

process.on('message', async (message: { type: string; url?: string; viewers?: string[]; refetchJitterMs?: number }) => {
  if (message.type === 'connect') {
    const viewers = message.viewers!;
    // In batches: a burst of thousands of handshakes at once only measures the accept queue.
    for (let i = 0; i < viewers.length; i += 100) {
      browsers.push(...(await Promise.all(viewers.slice(i, i + 100).map((viewer) => open(message.url!, viewer, message.refetchJitterMs)))));
    }
    process.send!({ type: 'ready', count: browsers.length });
  } else if (message.type === 'collect') {
    process.send!({ type: 'received', times: browsers.map((b) => b.times), values: browsers.map((b) => b.values), fragments, fragmentErrors, fragmentsLive });
    for (const browser of browsers) {
      browser.times = [];
      browser.values = [];
    }
    fragments = [];
    fragmentErrors = 0;
    fragmentsLive = 0;
  } else if (message.type === 'close') {
    for (const browser of browsers) browser.socket.terminate();
    process.exit(0);
  }
});
