import type { FlagDefinition } from './types.js';

/** The merge patch that kills a flag: disabled, so it serves its safe code default. */
export const KILL_PATCH = { state: 'DISABLED' } as const;

/**
 * The merge patch that restores a flag: enabled again, and, if it was killed by serving `false`
 * by default with no targeting, serving its `true` variant again.
 */
export function restorePatch(definition: FlagDefinition): Partial<FlagDefinition> {
  const patch: Partial<FlagDefinition> = { state: 'ENABLED' };
  if (definition.variants[definition.defaultVariant] === false && !definition.targeting) {
    const on = Object.keys(definition.variants).find((name) => definition.variants[name] === true);
    if (on) patch.defaultVariant = on;
  }
  return patch;
}
