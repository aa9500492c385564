// @ts-check
import { parseTargeting } from '../../../protocol/targeting.js';

/** @typedef {import('../../../protocol/wire.js').FlagDefinition} FlagDefinition */

/**
 * Flags in words, for the flags table and the editor's preview.
 */

/** A variant as a person reads it: its name, and its value when the name does not say it. */
export function variantText(/** @type {FlagDefinition} */ d, /** @type {string} */ name) {
  const value = d.variants[name];
  return value === name ? name : `${name} (${JSON.stringify(value)})`;
}

/**
 * What a flag's targeting does, in a few words: the viewers and groups it names, its rollout.
 * @param {FlagDefinition} d
 */
export function targetingSummary(d) {
  if (!d.targeting) return 'none: the default for all';
  const rules = parseTargeting(d.targeting);
  if (!rules) return 'custom rules (Explain shows one viewer)';
  const parts = [
    ...rules.overrides.map((rule) => `${rule.key} → ${rule.variant}`),
    ...rules.groups.map((rule) => `group ${rule.group} → ${rule.variant}`),
  ];
  if (rules.rollout) {
    const total = rules.rollout.reduce((sum, share) => sum + share.weight, 0) || 1;
    parts.push(
      `${parts.length ? 'everyone else: ' : ''}${rules.rollout.map((share) => `${Math.round((100 * share.weight) / total)} % ${share.variant}`).join(', ')}`,
    );
  }
  return parts.join('; ') || 'none: the default for all';
}
