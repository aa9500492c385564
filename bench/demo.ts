/**
 * `npm run demo`: the app with simulated traffic, to watch a kill work. It starts the app as
 * `npm start` would (same environment variables), opens a few hundred live browsers (light
 * Socket.IO clients in two worker processes, which refetch on a restore as real pages do), and
 * keeps page views coming from many viewers. Open /admin, flip the switch, watch the third-party
 * call rate drop to zero. Ctrl-C stops everything.
 *
 *   DEMO_BROWSERS=300  DEMO_VIEWS_PER_SECOND=25  (and every variable of .env.example)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, loadConfig } from '../server/config.js';
import { createLogger } from '../server/observability/logger.js';
import { startApp } from '../server/runtime/start.js';
import { Fleet } from './lib/fleet.js';

const browsers = Number(process.env.DEMO_BROWSERS ?? 300);
const viewsPerSecond = Number(process.env.DEMO_VIEWS_PER_SECOND ?? 25);
// Short caches, so that the third-party traffic is there to see (and to stop).
process.env.RECOMMENDATIONS_CACHE_TTL_MS ??= '2000';
process.env.LOG_LEVEL ??= 'warn';
// Every simulated browser comes from this machine's address, as the admin page's tab does: a cap on
// sockets per address that lets them all in.
process.env.MAX_SOCKETS_PER_ADDRESS ??= String(Math.max(1000, browsers + 100));

let config;
try {
  config = loadConfig();
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
}
const app = await startApp(config, createLogger(config.logLevel));
const people = ['maya', 'theo', 'priya', 'jonas', 'lena', 'sam'];
const viewers = Array.from({ length: browsers }, (_, i) => (i < 60 ? people[i % people.length]! : `visitor-${i}`));
const fleet = await Fleet.connect(app.url, viewers, 2);

console.log(`
  Demo running: ${browsers} live browsers, ~${viewsPerSecond} page views a second.
  Feed:            ${app.url}/
  Launch control:  ${app.url}/admin
  Admin token:     ${app.adminToken}
  Flip it:         npm run flag -- kill   /   npm run flag -- restore   (FLAG_API_URL=${app.url})
  Ctrl-C to stop.
`);

let stopping = false;
const stop = async () => {
  if (stopping) process.exit(1);
  stopping = true;
  await fleet.close();
  await app.close();
  process.exit(0);
};
process.on('SIGINT', stop).on('SIGTERM', stop);

// Page views from 500 viewers, spread over each second; the fleet's buffered events are drained now and then.
let tick = 0;
while (!stopping) {
  for (let i = 0; i < viewsPerSecond && !stopping; i++) {
    void fetch(`${app.url}/?user=reader-${Math.floor(Math.random() * 500)}`)
      .then((r) => r.text())
      .catch(() => undefined);
    await sleep(1000 / viewsPerSecond);
  }
  if (++tick % 10 === 0) await fleet.collect();
}
