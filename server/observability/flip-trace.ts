import { channel } from 'node:diagnostics_channel';

/**
 * The steps of a flip, from the request to the push, published on a diagnostics channel for a
 * benchmark to time (bench/lib/server-process.ts, BENCH_TRACE=1). Without a subscriber a step
 * costs one property read: nothing is built, nothing is sent.
 */
const flips = channel('killswitch:flip');

export function flipStep(step: string): void {
  if (flips.hasSubscribers) flips.publish({ step, at: performance.now() });
}

export const FLIP_CHANNEL = 'killswitch:flip';
