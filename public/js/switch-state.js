// @ts-check
import { parseTargeting } from '../../protocol/targeting.js';

/**
 * What the kill switch does right now, in words: killed for everyone, live for everyone, or
 * partly killed, and for whom. Read from its flagd definition (the rules the admin page's editor
 * writes; custom JsonLogic is said to be custom). Shared by the admin page and its tests.
 *
 * @typedef {{ state: string, defaultVariant?: string | null, variants: Record<string, unknown>, targeting?: unknown }} Definition
 * @typedef {{ state: 'killed' | 'live' | 'partial', headline: string, detail: string }} SwitchState
 */

/** @param {string[]} parts */
const list = (parts) => (parts.length <= 1 ? parts.join('') : `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}`);

/**
 * @param {Definition} definition
 * @returns {SwitchState}
 */
export function switchState(definition) {
  const { variants, defaultVariant } = definition;
  if (definition.state === 'DISABLED') {
    return {
      state: 'killed',
      headline: 'Killed: third party off',
      detail: 'Disabled: every viewer gets the safe default (off).',
    };
  }
  // A default of null (or one that names no variant) is the code's safe default: off.
  const serves = (/** @type {string | null | undefined} */ variant) =>
    typeof variant === 'string' && variants[variant] === true;
  const rules = parseTargeting(definition.targeting);
  if (rules === undefined) {
    return {
      state: 'partial',
      headline: 'Targeted: custom rules',
      detail: `Custom JsonLogic targeting decides who is killed; everyone it does not match gets “${defaultVariant ?? 'the safe default'}”. Explain shows what one viewer gets.`,
    };
  }
  /** @type {string[]} */
  const off = [];
  /** @type {string[]} */
  const on = [];
  for (const rule of rules.overrides) (serves(rule.variant) ? on : off).push(rule.key);
  for (const rule of rules.groups) (serves(rule.variant) ? on : off).push(`group ${rule.group}`);
  const viewers = (/** @type {string[]} */ keys) => keys.filter((key) => !key.startsWith('group '));
  const groups = (/** @type {string[]} */ keys) => keys.filter((key) => key.startsWith('group '));
  /** @param {string[]} keys */
  const who = (keys) =>
    list([
      ...(viewers(keys).length ? [`viewer${viewers(keys).length > 1 ? 's' : ''} ${list(viewers(keys))}`] : []),
      ...groups(keys),
    ]);
  let rest;
  let restKilled;
  let restLive;
  if (rules.rollout) {
    const total = rules.rollout.reduce((sum, share) => sum + share.weight, 0) || 1;
    const killedShare = Math.round(
      (100 * rules.rollout.filter((share) => !serves(share.variant)).reduce((sum, share) => sum + share.weight, 0)) /
        total,
    );
    restKilled = killedShare > 0;
    restLive = killedShare < 100;
    rest =
      killedShare === 0
        ? 'live for everyone else'
        : killedShare === 100
          ? 'killed for everyone else'
          : `killed for ${killedShare} % of everyone else`;
  } else {
    restKilled = !serves(defaultVariant);
    restLive = !restKilled;
    rest = restKilled ? 'killed for everyone else' : 'live for everyone else';
  }
  const anyKilled = off.length > 0 || restKilled;
  const anyLive = on.length > 0 || restLive;
  if (!anyKilled)
    return {
      state: 'live',
      headline: 'Live: third party on',
      detail: on.length ? `Live for everyone (targeting names ${who(on)}).` : 'Live for everyone.',
    };
  if (!anyLive) {
    const why = off.length
      ? ` (targeting names ${who(off)})`
      : rules.rollout
        ? ': the rollout serves off to all'
        : ': the default serves off';
    return { state: 'killed', headline: 'Killed: third party off', detail: `Killed for everyone${why}.` };
  }
  const parts = [
    ...(off.length ? [`killed for ${who(off)}`] : []),
    ...(on.length ? [`live for ${who(on)}`] : []),
    rest,
  ];
  return {
    state: 'partial',
    headline: 'Partly killed',
    detail: `${parts.join('; ')}.`.replace(/^./, (c) => c.toUpperCase()),
  };
}
