/**
 * One server under test, in a process of its own (so the clients and the orchestrator never
 * share its CPU thread), run with --expose-gc for honest memory figures.
 *   app:  this project, embedded defaults, flips through PATCH /api/flags/:key
 *   bare: the physical reference: a bare Socket.IO server with the same options, which sends the
 *         same snapshot on connect, broadcasts the same flag_update (io.emit) on POST /flip, and
 *         answers the pages' refetch after a restore at once (no third party behind it)
 * Parent -> server: { type: 'memory' } | { type: 'simulator', reset? } | { type: 'breakers' } | { type: 'trace' } | { type: 'exit' }
 * Server -> parent: { type: 'listening', url } | { type: 'memory', heapUsed, rss } | { type: 'simulator', stats } | { type: 'breakers', states } | { type: 'trace', ... }
 * BENCH_TRACE=1: the server's own side of the last flip: when its request arrived, and when the
 * server handed the first, the middle and the last of its next `browsers` socket writes to the kernel.
 * The app's environment: the defaults a user gets (LOG_LEVEL info, logs to /dev/null), with
 * startBenchApp's cap on sockets per address (every client is on loopback), plus the JSON object
 * in argv[3], if any.
 */
import { subscribe } from 'node:diagnostics_channel';
import { PerformanceObserver } from 'node:perf_hooks';
import { createServer } from 'node:http';
import { Socket as NetSocket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { FLIP_CHANNEL } from '../../server/observability/flip-trace.js';
import { startBenchApp } from '../../testing/app.js';

const mode = process.argv[2];
const gc = (globalThis as { gc?: () => void }).gc;

/** BENCH_TRACE=1: the last flip request's arrival, every socket write and every GC pause since (performance.now()). */
const trace = {
  requestAt: 0,
  writes: [] as number[],
  gcs: [] as { at: number; ms: number; kind: number }[],
  /** The app's own steps of the flip (server/observability/flip-trace.ts), and the response's end. */
  steps: [] as { step: string; at: number }[],
};
if (process.env.BENCH_TRACE) {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (trace.requestAt)
        trace.gcs.push({
          at: entry.startTime,
          ms: entry.duration,
          kind: (entry as { detail?: { kind?: number } }).detail?.kind ?? 0,
        });
    }
  }).observe({ entryTypes: ['gc'] });
  subscribe('http.server.request.start', (message) => {
    const { request } = message as { request: { method?: string } };
    if (request.method === 'POST' || request.method === 'PATCH') {
      trace.requestAt = performance.now();
      trace.writes = [];
      trace.gcs = [];
      trace.steps = [];
    }
  });
  subscribe(FLIP_CHANNEL, (message) => {
    const { step, at } = message as { step: string; at: number };
    if (trace.requestAt) trace.steps.push({ step, at });
  });
  subscribe('http.server.response.finish', (message) => {
    const { request } = message as { request: { method?: string } };
    if (trace.requestAt && (request.method === 'POST' || request.method === 'PATCH'))
      trace.steps.push({ step: 'response sent', at: performance.now() });
  });
  // The prototype's own method, wrapped: called below with its socket as `this`.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const write = NetSocket.prototype.write as (this: NetSocket, ...args: unknown[]) => boolean;
  NetSocket.prototype.write = function (this: NetSocket, ...args: unknown[]) {
    if (trace.requestAt) trace.writes.push(performance.now());
    return write.apply(this, args);
  };
}

let url: string;
let app: Awaited<ReturnType<typeof startBenchApp>> | undefined;
if (mode === 'bare') {
  let version = 1;
  const http = createServer();
  const io = new Server(http, {
    serveClient: false,
    perMessageDeflate: false,
    maxHttpBufferSize: 2048,
    pingInterval: 10_000,
    pingTimeout: 8_000,
  });
  // The same snapshot the app sends: every flag the page uses.
  io.on('connection', (socket) =>
    socket.emit('flag_snapshot', {
      'show-avatars-and-reccs': true,
      'recommendations-flavour': 'classic',
      theme: 'light',
    }),
  );
  http.on('request', (req, res) => {
    if (req.method === 'POST' && req.url?.startsWith('/flip')) {
      const query = new URL(req.url, 'http://x').searchParams;
      const key = query.get('key') ?? 'show-avatars-and-reccs';
      // The kill switch's value is a boolean; another flag's (the theme) is its variant's name.
      const value = key === 'show-avatars-and-reccs' ? query.get('value') === 'true' : query.get('value');
      // A restore carries the window the app gave to as many browsers (?windowMs=, from the app's own
      // restores in the same run), else a guess at its defaults (32 in flight, ~120 ms): the
      // earlier a page's refetch, the more of them run on the browsers' core while the update arrives.
      const windowMs = Number(query.get('windowMs')) || Math.ceil((io.engine.clientsCount * 120) / 32);
      const refetch = value === true ? { refetchWithinMs: windowMs } : {};
      io.emit('flag_update', { key, value, version: ++version, ...refetch });
      res.end('{}');
    } else if (req.method === 'GET' && req.url?.startsWith('/fragments/feed')) {
      // What a page fetches after a restore: answered at once, live and whole (no third party).
      res
        .writeHead(200, { 'content-type': 'text/html' })
        .end('<aside id="recommendations" data-source="live"></aside>');
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', () => resolve()));
  url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
} else {
  app = await startBenchApp(JSON.parse(process.argv[3] ?? '{}') as Record<string, string>);
  url = app.url;
}

process.on('message', (message: { type: string; reset?: boolean; browsers?: number }) => {
  if (message.type === 'simulator') {
    process.send!({ type: 'simulator', stats: app?.simulator?.stats() });
    if (message.reset) app?.simulator?.resetStats();
  } else if (message.type === 'breakers') {
    process.send!({ type: 'breakers', states: app ? app.upstream.map((client) => client.breakerState()) : [] });
  } else if (message.type === 'memory') {
    gc?.();
    gc?.();
    const { heapUsed, rss } = process.memoryUsage();
    process.send!({ type: 'memory', heapUsed, rss });
  } else if (message.type === 'trace') {
    const at = (index: number) => (trace.writes[index] ?? trace.requestAt) - trace.requestAt;
    // The first `browsers` writes: the push (a restore's refetches come later, spread out).
    const n = Math.min(trace.writes.length, message.browsers ?? Infinity);
    // GC pauses from the request's arrival to the last of those writes: their count and time (major: mark-compact).
    const end = trace.writes[n - 1] ?? trace.requestAt;
    const during = trace.gcs.filter((gc) => gc.at <= end);
    const gcMs = during.reduce((sum, gc) => sum + gc.ms, 0);
    const majorMs = during.filter((gc) => gc.kind === 4).reduce((sum, gc) => sum + gc.ms, 0);
    process.send!({
      type: 'trace',
      writes: n,
      first: at(0),
      middle: at(Math.floor(n / 2)),
      last: at(n - 1),
      gcs: during.length,
      gcMs,
      majorMs,
      // Each step's time from the request's arrival, in order (the first socket write among them).
      steps: [
        ...trace.steps.map(({ step, at: t }) => ({ step, ms: t - trace.requestAt })),
        ...(n > 0 ? [{ step: 'first socket write', ms: at(0) }] : []),
      ].sort((a, b) => a.ms - b.ms),
    });
    trace.requestAt = 0;
  } else if (message.type === 'exit') {
    process.exit(0);
  }
});
process.send!({ type: 'listening', url });
