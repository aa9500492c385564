// @ts-check
import { actorHeader } from '../../../protocol/actor-note.js';
import { RAMP_PATH } from '../../../protocol/ramp.js';
/**
 * The admin page's writes: the same API as `npm run flag`, carried by the page's session (an
 * HttpOnly cookie no script can read) with its CSRF token, and If-Match on the version the page
 * shows, so that a change made meanwhile by someone else is never overwritten unseen.
 */

/**
 * What to tell the person when a write could not be sent or its answer never came (the server
 * stopped, the network dropped, anything thrown on the way): it may or may not have been applied.
 * @param {unknown} error
 */
export function notSentText(error) {
  const why = error instanceof Error ? error.message : String(error);
  return `The change could not be sent, or its answer never came (${why}). Check the connection; the page shows the server's state once it is back.`;
}

/**
 * @param {{ csrf: string, versionOf: (key: string) => number | undefined, note: () => string }} options
 *   `note`: what the person at this page adds to the audit beside their token's name.
 */
export function createFlagApi({ csrf, versionOf, note }) {
  /** @param {string} key @param {Record<string, unknown>} patch */
  async function send(key, patch) {
    const version = versionOf(key);
    if (version === undefined) return { ok: false, text: `Unknown flag ${key}.` };
    const started = performance.now();
    const response = await fetch(`/api/flags/${encodeURIComponent(key)}`, {
      method: 'PATCH',
      credentials: 'same-origin',
      headers: {
        'content-type': 'application/merge-patch+json',
        'if-match': `"${version}"`,
        'x-csrf-token': csrf,
        'x-actor': actorHeader(note()),
        'x-change-source': 'admin',
      },
      body: JSON.stringify(patch),
    });
    const body = /** @type {{ message?: string }} */ (await response.json().catch(() => ({})));
    if (response.ok)
      return {
        ok: true,
        text: `Done in ${Math.round(performance.now() - started)} ms. Every open browser has been told.`,
      };
    if (response.status === 401)
      return { ok: false, text: 'Your session has ended. Reload the page to sign in again.' };
    if (response.status === 412)
      return {
        ok: false,
        text: 'Someone changed this flag first; the page now shows their change. Try again if still needed.',
      };
    return { ok: false, text: body.message || `Failed with HTTP ${response.status}.` };
  }

  /** @param {Record<string, unknown>} settings */
  async function ramp(settings) {
    const response = await fetch(RAMP_PATH, {
      method: 'POST',
      credentials: 'same-origin',
      headers: {
        'content-type': 'application/json',
        'x-csrf-token': csrf,
        'x-actor': actorHeader(note()),
        'x-change-source': 'admin',
      },
      body: JSON.stringify(settings),
    });
    const body = /** @type {{ message?: string }} */ (await response.json().catch(() => ({})));
    if (response.ok) return { ok: true, text: 'Guarded restore started: the first stage is live.' };
    if (response.status === 401)
      return { ok: false, text: 'Your session has ended. Reload the page to sign in again.' };
    return { ok: false, text: body.message || `Failed with HTTP ${response.status}.` };
  }

  return {
    /**
     * Starts a guarded restore of the kill switch; what to tell the person, never a rejection.
     * @param {Record<string, unknown>} settings
     * @returns {Promise<{ ok: boolean, text: string }>}
     */
    ramp: (settings) => ramp(settings).catch((error) => ({ ok: false, text: notSentText(error) })),
    /**
     * PATCHes a flag with a JSON merge patch.
     * @param {string} key
     * @param {Record<string, unknown>} patch
     * @returns {Promise<{ ok: boolean, text: string }>} what to tell the person. Never rejects:
     *   a write that could not go out (the server gone, a header fetch refuses, anything thrown)
     *   is said too, not lost in an event handler nobody awaits.
     */
    patch: (key, patch) => send(key, patch).catch((error) => ({ ok: false, text: notSentText(error) })),
  };
}

/** @typedef {ReturnType<typeof createFlagApi>} FlagApi */
