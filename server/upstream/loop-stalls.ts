/**
 * How much time this process's event loop lost to stalls (a burst of renders, a long GC, a
 * synchronous task) over a recent span. A call that passed its timeout while our own loop was
 * stalled may have had its answer waiting for us: that is our failure, not the third party's, and
 * the breaker must not count it (with auto-kill on, it would kill the switch for our own burst).
 */
export interface LoopStalls {
  /** Milliseconds the loop lost to stalls since `since` (a `performance.now()` time), up to now. */
  lostSince(since: number): number;
  close(): void;
}

/** A tick this late or later counts as a stall; below it is timer jitter. */
const NOISE_MS = 5;

/**
 * Watches the loop with a timer every `tickMs` (unref'd: it never keeps the process alive): a
 * tick that fires late by more than a few milliseconds is a stall of that length, ending then.
 * A stall still going on (the loop is busy right now, and the tick has not fired yet) counts too.
 * Stalls are kept for `keepMs`, enough for any call's timeout.
 */
export function watchLoopStalls(options: { tickMs?: number; keepMs?: number; now?: () => number } = {}): LoopStalls {
  const tickMs = options.tickMs ?? 20;
  const keepMs = options.keepMs ?? 120_000;
  const now = options.now ?? (() => performance.now());
  // Stalls as [ended at, lasted ms], oldest first.
  const stalls: Array<[number, number]> = [];
  let lastTick = now();
  const timer = setInterval(() => {
    const at = now();
    const late = at - lastTick - tickMs;
    lastTick = at;
    if (late > NOISE_MS) stalls.push([at, late]);
    while (stalls.length > 0 && stalls[0]![0] < at - keepMs) stalls.shift();
  }, tickMs);
  timer.unref();

  return {
    lostSince(since) {
      const at = now();
      let lost = 0;
      for (const [endedAt, lasted] of stalls) {
        // Only the part of each stall after `since`.
        if (endedAt > since) lost += Math.min(lasted, endedAt - since);
      }
      const ongoing = at - lastTick - tickMs;
      if (ongoing > NOISE_MS) lost += Math.min(ongoing, at - since);
      return lost;
    },
    close: () => clearInterval(timer),
  };
}
