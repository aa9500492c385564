// @ts-check
/**
 * What an open feed page does when its flags change: the page's whole policy, and the only
 * place it is written. feed.js runs it with the DOM; the benchmarks' light browsers run this
 * same module with counters, so that a benchmark makes exactly the requests a page makes.
 *
 * - A kill costs no request: the page already holds the killed state (fallback avatars, the
 *   generic recommendations in a <template>, the banner).
 * - A restore (or a new recommendations flavour) needs each page's own third-party content. The
 *   server sizes a window to the third party's measured capacity and sends it with the update
 *   (`refetchWithinMs`); each page fetches its live region at a random moment in that window.
 *   When the third party is at capacity anyway, the fragment answers with a turn (503 with
 *   `Refetch-Turn`), or a fragment that came out partly short carries one: the page shows that it
 *   is catching up and comes back on its turn. Every page ends live, at the third party's pace.
 * - A change that arrives while a fetch is under way wins: the older answer is dropped.
 */

import { KILL_SWITCH, RECS_FLAVOUR, THEME } from '../../protocol/flags.js';
import { REFETCH_AFTER_HEADER, REFETCH_TURN_HEADER } from '../../protocol/wire.js';

export { KILL_SWITCH, RECS_FLAVOUR, THEME };

/** The window when the server gave none (a flip seen in the snapshot after a reconnect). */
export const DEFAULT_WINDOW_MS = 1000;
/** A failed fetch (network, 5xx) is retried this many times, with backoff from 500 ms. */
export const MAX_RETRIES = 4;
/** Turns followed for one change at most: a guard, never reached while the server hands them out. */
export const MAX_TURNS = 100;

/**
 * @typedef {{ token: string, waitMs: number }} Turn
 * @typedef {{ kind: 'fragment', html: string, turn: Turn | undefined } | { kind: 'wait', turn: Turn }} FragmentAnswer
 * @typedef {object} LiveEffects
 * @property {() => void} kill Shows the killed state in place: no request.
 * @property {(turn: string | undefined) => Promise<FragmentAnswer>} fetchFragment GET /fragments/feed (see fetchFragment).
 * @property {(html: string) => void} swap Puts a fetched live region in place.
 * @property {(waitMs: number | undefined) => void} catchingUp Live, waiting for content (ms to the next try), or done (undefined).
 * @property {(value: unknown) => void} theme
 * @property {(text: string) => void} say A short message for the reader.
 */

/**
 * GET /fragments/feed (with `?turn=` when coming back on a turn), read as the server answers it.
 * @param {string} url the fragment's URL
 * @param {string | undefined} turn
 * @param {RequestInit} [init]
 * @returns {Promise<FragmentAnswer>}
 */
export async function fetchFragment(url, turn, init = {}) {
  const target = turn === undefined ? url : `${url}?turn=${encodeURIComponent(turn)}`;
  const response = await fetch(target, { ...init, headers: { accept: 'text/html', ...init.headers } });
  const token = response.headers.get(REFETCH_TURN_HEADER);
  const waitMs = Number(response.headers.get(REFETCH_AFTER_HEADER));
  const next = token
    ? { token, waitMs: Number.isFinite(waitMs) && waitMs >= 0 ? waitMs : DEFAULT_WINDOW_MS }
    : undefined;
  if (response.status === 503 && next) {
    await response.body?.cancel();
    return { kind: 'wait', turn: next };
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`HTTP ${response.status}`);
  }
  return { kind: 'fragment', html: await response.text(), turn: next };
}

/**
 * @param {{
 *   live: boolean,
 *   flavour?: string | undefined,
 *   effects: LiveEffects,
 *   random?: () => number,
 *   setTimer?: (fn: () => void, ms: number) => unknown,
 *   clearTimer?: (timer: any) => void,
 * }} options `live`: the kill switch as the page was rendered; `flavour`: the recommendations flavour it was rendered with.
 */
export function createLiveSync(options) {
  const { effects } = options;
  const random = options.random ?? Math.random;
  const setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
  const clearTimer = options.clearTimer ?? ((timer) => clearTimeout(timer));
  let live = options.live;
  let flavour = options.flavour;
  /** Bumped on every change that needs other content; an answer for an older one is dropped. */
  let generation = 0;
  /** @type {unknown} */
  let timer;

  /**
   * Fetches the live region after `delayMs`, then follows turns until it is whole.
   * @param {number} forGeneration
   * @param {number} delayMs
   * @param {string | undefined} turn
   * @param {number} attempt failed tries so far
   * @param {number} turns turns followed so far
   */
  function refreshAfter(forGeneration, delayMs, turn, attempt = 0, turns = 0) {
    clearTimer(timer);
    timer = setTimer(async () => {
      /** @type {FragmentAnswer} */
      let answer;
      try {
        answer = await effects.fetchFragment(turn);
      } catch {
        if (forGeneration !== generation) return;
        if (attempt >= MAX_RETRIES) return effects.catchingUp(undefined);
        return refreshAfter(forGeneration, 500 * 2 ** attempt, turn, attempt + 1, turns);
      }
      if (forGeneration !== generation) return;
      if (answer.kind === 'fragment') effects.swap(answer.html);
      if (answer.turn && turns < MAX_TURNS) {
        effects.catchingUp(answer.turn.waitMs);
        refreshAfter(forGeneration, answer.turn.waitMs, answer.turn.token, 0, turns + 1);
      } else {
        effects.catchingUp(undefined);
      }
    }, delayMs);
  }

  /** @param {number | undefined} windowMs */
  function refreshWithin(windowMs) {
    generation += 1;
    const delay = Math.floor(random() * (windowMs ?? DEFAULT_WINDOW_MS));
    effects.catchingUp(delay);
    refreshAfter(generation, delay, undefined);
  }

  /**
   * @param {string} key
   * @param {unknown} value
   * @param {number | undefined} refetchWithinMs
   */
  function apply(key, value, refetchWithinMs) {
    if (key === KILL_SWITCH) {
      const on = value === true;
      if (on === live) return;
      live = on;
      if (!on) {
        generation += 1;
        clearTimer(timer);
        effects.kill();
        effects.say('Profile photos and suggestions are temporarily unavailable.');
      } else {
        effects.say('Profile photos and suggestions are back.');
        refreshWithin(refetchWithinMs);
      }
    } else if (key === RECS_FLAVOUR) {
      const next = String(value);
      const changed = flavour !== undefined && next !== flavour;
      flavour = next;
      // Killed, the page shows the generic picks whatever the flavour; a restore fetches the new one.
      if (changed && live) refreshWithin(refetchWithinMs);
    } else if (key === THEME) {
      effects.theme(value);
    }
  }

  return {
    /** @param {Pick<import('../../protocol/wire.js').FlagUpdate, 'key' | 'value' | 'refetchWithinMs'>} update a flag_update (its version is not read) */
    update(update) {
      apply(update.key, update.value, update.refetchWithinMs);
    },
    /** @param {Record<string, unknown>} values a flag_snapshot: sent on every (re)connect */
    snapshot(values) {
      for (const [key, value] of Object.entries(values)) apply(key, value, undefined);
    },
    /**
     * The page was rendered live but short, with a turn to come back on.
     * @param {Turn} turn
     */
    comeBackOn(turn) {
      effects.catchingUp(turn.waitMs);
      refreshAfter(generation, turn.waitMs, turn.token);
    },
    /** The kill switch as the page now has it. */
    get live() {
      return live;
    },
  };
}
