// @ts-check
/**
 * The flags the page and the server both know, and what "kill" and "restore" write: one source for
 * the server, the command line and the launch-control page.
 */

/** @typedef {import('./wire.js').FlagDefinition} FlagDefinition */

/** The kill switch: `true` lets the feed call the third party, `false` sheds it. */
export const KILL_SWITCH = 'show-avatars-and-reccs';
/** Which recommendations the third party is asked for. */
export const RECS_FLAVOUR = 'recommendations-flavour';
/** The page's look; a change restyles every open page in place. */
export const THEME = 'theme';
/** The themes the page has styles for; any other value renders as the first. */
export const THEMES = Object.freeze(['light', 'dark', 'aurora']);

/** The merge patch that kills a flag: disabled, so it serves its safe code default. */
export const KILL_PATCH = Object.freeze({ state: /** @type {const} */ ('DISABLED') });

/**
 * Killed for everyone: disabled, or serving `false` by default with no targeting. (Partly killed,
 * by targeting, is not this: see public/js/switch-state.js.)
 * @param {Pick<FlagDefinition, 'state' | 'variants' | 'defaultVariant' | 'targeting'> | null | undefined} definition
 */
export function isKilled(definition) {
  if (!definition) return true;
  const { state, variants, defaultVariant, targeting } = definition;
  return (
    state === 'DISABLED' || (typeof defaultVariant === 'string' && variants[defaultVariant] === false && !targeting)
  );
}

/**
 * The merge patch that restores a flag: enabled again, and, if it was killed by serving `false`
 * by default with no targeting, serving its `true` variant again.
 * @param {Pick<FlagDefinition, 'variants' | 'defaultVariant' | 'targeting'>} definition
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
