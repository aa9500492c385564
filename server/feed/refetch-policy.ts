import type { FlagValue } from '@openfeature/server-sdk';
import { KILL_SWITCH, RECS_FLAVOUR } from '../flags/catalog.js';
import type { Pacer } from '../upstream/pacing.js';

/**
 * Which flag changes make an open page fetch its live content again, and over what window the
 * pages that get one should spread their fetches: the push asks it of every value it sends.
 */
export interface RefetchPolicy {
  /** The window in ms for `pages` pages getting `value`; undefined when the value needs no refetch. */
  windowFor(key: string, value: FlagValue, pages: number): number | undefined;
  /** Every browser here has just been sent `value` for `key`. */
  reachedEveryone(key: string, value: FlagValue): void;
}

/**
 * A restore needs each page's own avatar and recommendations (the authors' avatars are shared,
 * and cached after the first page); a new recommendations flavour needs the recommendations alone.
 * A kill needs nothing: the page holds the killed state already. Paced by the third party's
 * measured capacity (see upstream/pacing.ts).
 */
export function createRefetchPolicy(pacer: Pacer): RefetchPolicy {
  return {
    windowFor(key, value, pages) {
      if (key === KILL_SWITCH && value === true)
        return pacer.spreadMs(pages, { avatars: 1, recommendations: 1, renderer: 1 });
      if (key === RECS_FLAVOUR) return pacer.spreadMs(pages, { recommendations: 1, renderer: 1 });
      return undefined;
    },
    reachedEveryone(key, value) {
      // Every page killed: no turn handed out will be used, and a restore must not queue behind them.
      if (key === KILL_SWITCH && value === false) pacer.releaseAll();
    },
  };
}
