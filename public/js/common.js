// @ts-check
/**
 * What the pages and the server share, written once: the flag keys the page reacts to, the
 * themes, the fallback avatar, the headers of a turn, and what "killed" and "restore" mean for the
 * kill switch. The browser loads this module as it is; the server imports it too (its build
 * compiles it beside the server), so the two can never disagree.
 */

/** The kill switch: `true` lets the feed call the third party, `false` sheds it. */
export const KILL_SWITCH = 'show-avatars-and-reccs';
/** Which recommendations the third party is asked for. */
export const RECS_FLAVOUR = 'recommendations-flavour';
/** The page's look; a change restyles every open page in place. */
export const THEME = 'theme';
/** The themes the page has styles for; any other value renders as the first. */
export const THEMES = Object.freeze(['light', 'dark', 'aurora']);
/** What an avatar shows when the third party is not called (killed, failed, not yet fetched). */
export const FALLBACK_AVATAR = '/static/img/fallback-avatar.svg';
/** A fragment's turn: when to come back (the page catches up at the third party's pace). */
export const REFETCH_TURN_HEADER = 'Refetch-Turn';
export const REFETCH_AFTER_HEADER = 'Refetch-After-Ms';

/**
 * @typedef {{ state: string, defaultVariant?: string | null, variants: Record<string, unknown>, targeting?: unknown }} SwitchDefinition
 */

/** The merge patch that kills a flag: disabled, so it serves its safe code default. */
export const KILL_PATCH = Object.freeze({ state: /** @type {const} */ ('DISABLED') });

/**
 * Killed for everyone: disabled, or serving `false` by default with no targeting. (Partly killed,
 * by targeting, is not this: see switch-state.js.)
 * @param {SwitchDefinition | null | undefined} definition
 */
export function isKilled(definition) {
  if (!definition) return true;
  const { state, variants, defaultVariant, targeting } = definition;
  return state === 'DISABLED' || (typeof defaultVariant === 'string' && variants[defaultVariant] === false && !targeting);
}

/**
 * The merge patch that restores a flag: enabled again, and, if it was killed by serving `false`
 * by default with no targeting, serving its `true` variant again.
 * @param {SwitchDefinition} definition
 * @returns {{ state: 'ENABLED', defaultVariant?: string }}
 */
export function restorePatch(definition) {
  /** @type {{ state: 'ENABLED', defaultVariant?: string }} */
  const patch = { state: 'ENABLED' };
  const { variants, defaultVariant, targeting } = definition;
  if (typeof defaultVariant === 'string' && variants[defaultVariant] === false && !targeting) {
    const on = Object.keys(variants).find((name) => variants[name] === true);
    if (on) patch.defaultVariant = on;
  }
  return patch;
}

/**
 * What the admin page is sent (`admin_state` over Socket.IO, and the page's initial state): the
 * server builds it with these types, the page reads it with them.
 *
 * @typedef {{ state: string, defaultVariant?: string | null, variants: Record<string, unknown>, targeting?: object, metadata?: object }} FlagDefinition
 * @typedef {{ key: string, version: number, description: string, definition: FlagDefinition | null, problem?: string }} AdminFlag
 *   `problem`: why the server cannot serve the flag as written (it answers its safe default).
 * @typedef {{ source: string, name: string, note?: string, address?: string }} AdminActor
 * @typedef {{ id: string, at: string, key: string, version: number, summary: string, actor: AdminActor }} AdminAuditEntry
 * @typedef {{ service: string, breaker: string, calls: Record<string, number>, skipped: Record<string, number> }} UpstreamState
 * @typedef {{ kind: string, writable: boolean, ready: boolean, detail: string }} SourceState
 * @typedef {{ source: SourceState, flags: AdminFlag[], audit: AdminAuditEntry[], browsers: number, upstream: UpstreamState[], theme: string }} AdminState
 */
