/**
 * Feed render throughput (autocannon, 20 connections, 5 s each, after a 2 s warm-up):
 *   killed      this app, the kill switch off: no third-party call
 *   live warm   this app, live, every avatar and recommendation cached
 *   bare        the physical reference: bare Express + EJS rendering the same template with a
 *               fixed view model (no flags, no cookie, no headers, no logging, no metrics)
 * Target: killed >= 0.7x bare. Also third-party calls per page view in each case.
 *   npx tsx bench/render.ts
 */
import { mkdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import express from 'express';
import { people, posts } from '../server/feed/content.js';
import { KILL_SWITCH } from '../server/flags/catalog.js';
import { viewsDir } from '../server/paths.js';
import { FALLBACK_AVATAR } from '../server/upstream/avatars.js';
import { FALLBACK_RECOMMENDATIONS } from '../server/feed/content.js';
import { viewerFor } from '../server/feed/viewer.js';
import { startBenchApp } from '../testing/app.js';

async function load(url: string, headers: Record<string, string> = {}) {
  await autocannon({ url, connections: 20, duration: 2, headers });
  const result = await autocannon({ url, connections: 20, duration: 5, headers });
  return { rps: result.requests.average, p99: result.latency.p99, non2xx: result.non2xx };
}

// The bare reference: the same EJS template, a fixed killed-feed view model.
const bare = express();
bare.set('views', viewsDir);
bare.set('view engine', 'ejs');
bare.set('view cache', true);
const fallback = { url: FALLBACK_AVATAR, live: false };
const feed = {
  viewer: { ...viewerFor('maya'), avatar: fallback },
  showAvatars: false,
  posts: posts.map((post) => ({ ...post, author: people.find((p) => p.key === post.author)!, avatar: fallback })),
  recommendations: FALLBACK_RECOMMENDATIONS,
  flavour: 'classic',
  theme: 'light',
  people,
};
bare.get('/', (_req, res) => res.render('index', { feed, fallbackRecommendations: FALLBACK_RECOMMENDATIONS }));
const bareServer = bare.listen(0, '127.0.0.1');
await new Promise((resolve) => bareServer.once('listening', resolve));
const bareUrl = `http://127.0.0.1:${(bareServer.address() as AddressInfo).port}/`;

const app = await startBenchApp({ SIMULATOR_LATENCY_MS: '20', NODE_ENV: 'production' });
const cookie = { cookie: 'viewer=maya' };
const rows: { name: string; rps: number; p99: number; callsPerView: number }[] = [];

const measure = async (name: string, url: string, headers?: Record<string, string>) => {
  app.simulator!.resetStats();
  const r = await load(url, headers);
  const views = r.rps * 7; // warm-up + measured, roughly: calls are counted over both
  const stats = app.simulator!.stats();
  rows.push({
    name,
    rps: r.rps,
    p99: r.p99,
    callsPerView: name === 'bare' ? 0 : (stats.requests.avatars + stats.requests.recommendations) / Math.max(1, views),
  });
  console.log(`${name.padEnd(10)} ${r.rps.toFixed(0).padStart(6)} req/s   p99 ${r.p99} ms   non-2xx ${r.non2xx}`);
  // Every response must be the page: an error page is not what is being measured.
  if (r.non2xx > 0) throw new Error(`${name}: ${r.non2xx} responses were not 2xx`);
};

await measure('bare', bareUrl);
await app.patch(KILL_SWITCH, { state: 'DISABLED' });
await measure('killed', `${app.url}/`, cookie);
await app.patch(KILL_SWITCH, { state: 'ENABLED' });
await fetch(`${app.url}/?user=maya`).then((r) => r.text()); // warm the caches
await measure('live warm', `${app.url}/`, cookie);

const bareRps = rows.find((r) => r.name === 'bare')!.rps;
for (const row of rows)
  console.log(
    `${row.name.padEnd(10)} ${(row.rps / bareRps).toFixed(2)}x bare   third-party calls per page view ${row.callsPerView.toFixed(4)}`,
  );
await mkdir(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
await writeFile(
  fileURLToPath(new URL('./results/render.json', import.meta.url)),
  JSON.stringify({ at: new Date().toISOString(), rows }, null, 2),
);
bareServer.close();
await app.stop();
