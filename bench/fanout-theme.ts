/**
 * A quick fan-out probe of the server's write loop (about a minute for both servers at 10,000):
 * the `theme` flag flipped back and forth (no refetch after it, so no settling between flips),
 * to N light browsers, on the bare Socket.IO server and on the app, one after the other, pinned as
 * in bench/fanout.ts. Per flip: the server's first and last socket write after the request
 * arrived, its GC pauses meanwhile, and the browsers' p99 from the request being sent. For
 * comparing two versions of the push quickly; bench/fanout.ts (kills and restores) is the record.
 *   [MODES=bare,app,bare,app] npx tsx bench/fanout-theme.ts [10000] [flips=10]
 */
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { patchFlag } from '../testing/app.js';
import { Fleet, median, percentile } from './lib/fleet.js';
import { pinToBrowserCore, startServerProcess } from './lib/pin.js';
pinToBrowserCore();
// The servers' own side of each flip (bench/lib/server-process.ts reads it at start).
process.env.BENCH_TRACE ??= '1';
const N = Number(process.argv[2] ?? 10000);
const FLIPS = Number(process.argv[3] ?? 10);
const modes = (process.env.MODES ?? 'bare,app').split(',');
// SERVER_NODE: extra Node options for the servers (e.g. "--cpu-prof --cpu-prof-dir=/tmp/profiles").
const nodeOpts = (process.env.SERVER_NODE ?? '').split(' ').filter(Boolean);
const summary: string[] = [];
for (const mode of modes) {
  const server = await startServerProcess([mode], nodeOpts);
  await sleep(300);
  const fleet = await Fleet.connect(
    server.url,
    Array.from({ length: N }, (_, i) => `viewer-${i}`),
    2,
  );
  await sleep(1000);
  const firsts: number[] = [];
  const lasts: number[] = [];
  const p99s: number[] = [];
  const gcs: number[] = [];
  for (let f = 0; f < FLIPS; f++) {
    const value = f % 2 === 0 ? 'dark' : 'light';
    const { latencies: lat } = await fleet.timeFlip(() =>
      mode === 'bare'
        ? fetch(`${server.url}/flip?key=theme&value=${value}`, { method: 'POST' }).then((r) => r.text())
        : patchFlag(server.url, 'theme', { defaultVariant: value }),
    );
    if (lat.length !== N) throw new Error(`${mode} flip ${f} reached ${lat.length} of ${N} browsers`);
    const reply = once(server.child, 'message');
    server.child.send({ type: 'trace', browsers: N });
    const [t] = (await reply) as [{ first: number; last: number; gcMs: number }];
    firsts.push(t.first);
    lasts.push(t.last);
    p99s.push(percentile(lat, 99));
    gcs.push(t.gcMs);
    console.log(
      `${mode} flip ${f}: server first ${t.first.toFixed(1)} last ${t.last.toFixed(1)} gc ${t.gcMs.toFixed(1)}; p99 ${percentile(lat, 99).toFixed(1)}`,
    );
    await sleep(1500);
  }
  summary.push(
    `${mode}: median first ${median(firsts).toFixed(1)} last ${median(lasts).toFixed(1)} p99 ${median(p99s).toFixed(1)} gc ${median(gcs).toFixed(1)}`,
  );
  await fleet.close();
  server.child.send({ type: 'exit' });
  await once(server.child, 'exit');
}
console.log(summary.join('\n'));
