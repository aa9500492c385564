// @ts-check
/**
 * Targeting a person can use, without writing JsonLogic: per-viewer overrides, groups, and a
 * percentage rollout for everyone else, turned into flagd targeting and back. The admin page
 * uses it to build what it PATCHes; the tests use it to check the round trip and the rollout.
 *
 * The shape written, first match wins:
 *   { "if": [ {"in": [{"var": "targetingKey"}, ["maya", "theo"]]}, "on",     <- viewers, per variant
 *             {"in": ["beta", {"var": "groups"}]},                   "off",    <- groups, in order
 *             {"fractional": [["on", 90], ["off", 10]]} ] }                    <- rollout (or null: the default)
 */

/**
 * @typedef {{ key: string, variant: string }} Override
 * @typedef {{ group: string, variant: string }} GroupRule
 * @typedef {{ variant: string, weight: number }} Share
 * @typedef {{ overrides: Override[], groups: GroupRule[], rollout: Share[] | null }} TargetingRules
 */

/** @returns {TargetingRules} */
export function emptyRules() {
  return { overrides: [], groups: [], rollout: null };
}

/**
 * @param {TargetingRules} rules
 * @returns {object | null} flagd targeting, or null when the rules say nothing (the default for all)
 */
export function buildTargeting(rules) {
  /** @type {unknown[]} */
  const branches = [];
  /** @type {Map<string, string[]>} */
  const keysByVariant = new Map();
  for (const { key, variant } of rules.overrides) {
    if (!keysByVariant.has(variant)) keysByVariant.set(variant, []);
    keysByVariant.get(variant)?.push(key);
  }
  for (const [variant, keys] of keysByVariant) {
    branches.push({ in: [{ var: 'targetingKey' }, keys] }, variant);
  }
  for (const { group, variant } of rules.groups) {
    branches.push({ in: [group, { var: 'groups' }] }, variant);
  }
  const rollout = rules.rollout?.filter((share) => share.weight > 0) ?? [];
  const otherwise = rollout.length ? { fractional: rollout.map(({ variant, weight }) => [variant, weight]) } : null;
  if (branches.length === 0) return otherwise;
  return { if: [...branches, otherwise] };
}

/** @param {unknown} value @returns {value is Record<string, unknown>} */
const isObject = (value) => typeof value === 'object' && value !== null && !Array.isArray(value);

/** @param {unknown} node @param {string} name */
const isVar = (node, name) => isObject(node) && Object.keys(node).length === 1 && node.var === name;

/**
 * @param {unknown} node
 * @returns {Share[] | null | undefined} the rollout, null for "the default", undefined if not ours
 */
function parseOtherwise(node) {
  if (node === null || node === undefined) return null;
  if (!isObject(node) || Object.keys(node).length !== 1 || !Array.isArray(node.fractional)) return undefined;
  /** @type {Share[]} */
  const shares = [];
  for (const share of node.fractional) {
    if (!Array.isArray(share) || share.length !== 2 || typeof share[0] !== 'string' || typeof share[1] !== 'number')
      return undefined;
    shares.push({ variant: share[0], weight: share[1] });
  }
  return shares;
}

/**
 * Reads flagd targeting back into rules, if it has the shape buildTargeting writes.
 * @param {unknown} targeting
 * @returns {TargetingRules | undefined} undefined for custom JsonLogic (shown raw, not editable as rules)
 */
export function parseTargeting(targeting) {
  const rules = emptyRules();
  if (targeting === undefined || targeting === null || (isObject(targeting) && Object.keys(targeting).length === 0))
    return rules;
  const direct = parseOtherwise(targeting);
  if (direct) return { ...rules, rollout: direct };
  if (!isObject(targeting) || Object.keys(targeting).length !== 1 || !Array.isArray(targeting.if)) return undefined;
  const parts = targeting.if;
  if (parts.length % 2 === 0) return undefined;
  for (let i = 0; i < parts.length - 1; i += 2) {
    const condition = parts[i];
    const variant = parts[i + 1];
    if (
      typeof variant !== 'string' ||
      !isObject(condition) ||
      !Array.isArray(condition.in) ||
      Object.keys(condition).length !== 1
    )
      return undefined;
    const [left, right] = /** @type {unknown[]} */ (condition.in);
    if (isVar(left, 'targetingKey') && Array.isArray(right) && right.every((key) => typeof key === 'string')) {
      for (const key of right) rules.overrides.push({ key, variant });
    } else if (typeof left === 'string' && isVar(right, 'groups')) {
      rules.groups.push({ group: left, variant });
    } else {
      return undefined;
    }
  }
  const otherwise = parseOtherwise(parts[parts.length - 1]);
  if (otherwise === undefined) return undefined;
  rules.rollout = otherwise;
  return rules;
}

/**
 * What is wrong with some rules, in words, or '' when they can be saved.
 * @param {TargetingRules} rules
 * @param {string[]} variants
 */
export function checkRules(rules, variants) {
  const known = new Set(variants);
  for (const { key, variant } of rules.overrides) {
    if (!key.trim()) return 'A viewer override needs a viewer key.';
    if (!known.has(variant)) return `Viewer ${key}: "${variant}" is not a variant.`;
  }
  for (const { group, variant } of rules.groups) {
    if (!group.trim()) return 'A group rule needs a group name.';
    if (!known.has(variant)) return `Group ${group}: "${variant}" is not a variant.`;
  }
  if (rules.rollout) {
    const total = rules.rollout.reduce((sum, share) => sum + share.weight, 0);
    if (rules.rollout.some((share) => !Number.isInteger(share.weight) || share.weight < 0))
      return 'Rollout shares must be whole percentages.';
    if (total !== 100) return `Rollout shares add up to ${total} %, not 100 %.`;
  }
  return '';
}

/**
 * The JSON Merge Patch (RFC 7386) that turns `from` into `to`. A merge patch merges objects
 * member by member, so writing new targeting over old must also null the members it drops:
 * `{"fractional": ...}` sent over `{"if": ...}` would otherwise leave both, which is not valid.
 * @param {unknown} from
 * @param {unknown} to
 * @returns {unknown}
 */
export function mergePatchFor(from, to) {
  if (!isObject(from) || !isObject(to)) return to;
  /** @type {Record<string, unknown>} */
  const patch = {};
  for (const member of Object.keys(from)) if (!Object.hasOwn(to, member)) patch[member] = null;
  for (const member of Object.keys(to)) {
    if (JSON.stringify(from[member]) !== JSON.stringify(to[member]))
      patch[member] = mergePatchFor(from[member], to[member]);
  }
  return patch;
}
