/**
 * A targeted flip with 2,000 browsers of 500 distinct viewers (4 tabs each), clients in two
 * worker processes: the time from the PATCH being sent to the last affected browser receiving
 * its flag_update, against an untargeted kill (a broadcast) in the same run.
 *   npx tsx bench/targeted-push.ts
 */
import { KILL_SWITCH } from '../server/flags/catalog.js';
import { startBenchApp } from '../testing/app.js';
import { Fleet, median, percentile } from './lib/fleet.js';

const PEOPLE = 500;
const TABS = 4;
const ROUNDS = 7;

// The defaults a user gets (logging at info included), but no write limit: 28 flips in a row.
const app = await startBenchApp();
const viewers = Array.from({ length: PEOPLE * TABS }, (_, i) => `user-${i % PEOPLE}`);
const targeted = Array.from({ length: PEOPLE / 2 }, (_, i) => `user-${i * 2}`); // half the people
const fleet = await Fleet.connect(app.url, viewers, 2);
console.log(`${viewers.length} browsers of ${PEOPLE} viewers connected`);

/** A flip that reaches only some browsers ends when none has had an update for a second (counted from the arming). */
async function flip(patch: unknown, expected: number) {
  const { latencies } = await fleet.timeFlip(
    async () => {
      await app.patch(KILL_SWITCH, patch);
      await app.realtime.pusher.idle();
    },
    { every: expected === viewers.length, quietMs: 1000 },
  );
  if (latencies.length !== expected) throw new Error(`expected ${expected} updates, got ${latencies.length}`);
  return { last: latencies.at(-1)!, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

const targetedRuns = [];
const broadcastRuns = [];
for (let round = 0; round < ROUNDS; round++) {
  targetedRuns.push(
    await flip(
      { targeting: { if: [{ in: [{ var: 'targetingKey' }, targeted] }, 'off', null] } },
      targeted.length * TABS,
    ),
  );
  await flip({ targeting: null }, targeted.length * TABS);
  broadcastRuns.push(await flip({ state: 'DISABLED' }, viewers.length));
  await flip({ state: 'ENABLED' }, viewers.length);
}
const report = (label: string, runs: { last: number; p50: number; p99: number }[]) =>
  console.log(
    `${label.padEnd(44)} last ${median(runs.map((r) => r.last)).toFixed(1)} ms   p50 ${median(runs.map((r) => r.p50)).toFixed(1)} ms   p99 ${median(runs.map((r) => r.p99)).toFixed(1)} ms   (median of ${runs.length})`,
  );
report(`targeted flip: ${targeted.length * TABS} of ${viewers.length} browsers`, targetedRuns);
report(`untargeted kill: all ${viewers.length} browsers`, broadcastRuns);

await fleet.close();
await app.stop();
