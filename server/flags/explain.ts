import type { EvaluationContext, FlagValue, JsonValue } from '@openfeature/server-sdk';
import { flagCatalog } from './catalog.js';
import { valueOrSafeDefault, type FlagsProvider } from './provider.js';
import type { FlagRepository } from './repository.js';
import { parseTargeting, type Share, type TargetingRules } from '../../protocol/targeting.js';
import { compileFlag } from './engine.js';
import type { FlagDefinition } from './types.js';

export interface Explanation {
  key: string;
  value: FlagValue;
  variant: string | undefined;
  /** OpenFeature's reason, with SPLIT when the value came from a percentage rollout. */
  reason: string;
  errorCode?: string | undefined;
  /** Which rule or rollout bucket decided, in words (e.g. "in group beta (rule 1 of 2)"). */
  because: string;
  scope: 'page' | 'server';
}

const SPLIT_SENTINEL = '__rollout__';

/** The default, in words: a variant, or none (the code's safe default). */
function defaultOf(definition: FlagDefinition): string {
  return typeof definition.defaultVariant === 'string'
    ? `the default variant (${definition.defaultVariant})`
    : "no default variant: the code's safe default";
}

/** A copy of some JsonLogic with every `fractional` rule replaced by the sentinel variant. */
function withoutFractional(logic: JsonValue): JsonValue {
  if (Array.isArray(logic)) return logic.map(withoutFractional);
  if (logic && typeof logic === 'object') {
    if (Object.hasOwn(logic, 'fractional')) return SPLIT_SENTINEL;
    return Object.fromEntries(Object.entries(logic).map(([k, v]) => [k, withoutFractional(v)]));
  }
  return logic;
}

/**
 * flagd-core reports a percentage rollout as TARGETING_MATCH. To tell SPLIT apart, whatever the
 * shape of the rule, the targeting is evaluated once more with every `fractional` replaced by a
 * sentinel variant: if the sentinel comes out, this viewer's value came from the rollout.
 */
function cameFromRollout(key: string, definition: FlagDefinition, context: EvaluationContext): boolean {
  if (!definition.targeting || !JSON.stringify(definition.targeting).includes('"fractional"')) return false;
  const first = Object.values(definition.variants)[0]!;
  const probeFlag = {
    ...definition,
    variants: { ...definition.variants, [SPLIT_SENTINEL]: first },
    targeting: withoutFractional(definition.targeting),
  };
  return compileFlag(key, probeFlag as FlagDefinition).evaluate(context).variant === SPLIT_SENTINEL;
}

/** The rollout's share that served a variant: "rollout: trending (20 %)". */
function shareInWords(rollout: Share[], variant: string | undefined): string {
  const total = rollout.reduce((sum, share) => sum + share.weight, 0) || 1;
  const share = rollout.find((candidate) => candidate.variant === variant);
  return share ? `rollout: ${variant} (${Math.round((100 * share.weight) / total)} %)` : 'rollout';
}

/**
 * The rules of targeting the admin page's editor writes (protocol/targeting.js reads them, for the
 * editor and here alike), as flagd evaluates them: one rule per variant given to listed viewers,
 * then one per group, in order; the first that matches decides.
 */
function ruleThatMatched(
  rules: TargetingRules,
  context: EvaluationContext,
): { rule: number; of: number; words: string } | undefined {
  const listed = new Map<string, string[]>();
  for (const { key, variant } of rules.overrides) listed.set(variant, [...(listed.get(variant) ?? []), key]);
  const ordered = [
    ...[...listed.values()].map((keys) => ({
      matches: keys.includes(String(context.targetingKey)),
      words: 'the viewer is listed by key',
    })),
    ...rules.groups.map(({ group }) => ({
      matches: Array.isArray(context.groups) && context.groups.includes(group),
      words: `in group ${group}`,
    })),
  ];
  const index = ordered.findIndex((rule) => rule.matches);
  return index < 0 ? undefined : { rule: index + 1, of: ordered.length, words: ordered[index]!.words };
}

/**
 * Which rule decided, in words: the first rule that matches (numbered), a rollout's share, or the
 * default. For a flag's own reason (DISABLED, STATIC, ...) the sentence says what it means.
 */
function because(
  definition: FlagDefinition | undefined,
  reason: string,
  variant: string | undefined,
  context: EvaluationContext,
  sourceKind: string,
): string {
  if (!definition)
    return reason === 'ERROR'
      ? 'the flag is missing or failed: the safe default'
      : `decided by ${sourceKind} (${reason})`;
  if (reason === 'DISABLED') return 'the flag is disabled: the safe default for everyone';
  if (reason === 'ERROR') return 'the evaluation failed: the safe default';
  const targeting = definition.targeting;
  if (!targeting || Object.keys(targeting).length === 0) return `no targeting: ${defaultOf(definition)}`;
  const rules = parseTargeting(targeting);
  if (!rules)
    return reason === 'DEFAULT' ? `custom targeting gave no variant: ${defaultOf(definition)}` : 'custom targeting';
  const matched = ruleThatMatched(rules, context);
  if (matched) return `${matched.words} (rule ${matched.rule} of ${matched.of})`;
  const noRules = rules.overrides.length === 0 && rules.groups.length === 0;
  if (rules.rollout)
    return noRules ? shareInWords(rules.rollout, variant) : `no rule matched; ${shareInWords(rules.rollout, variant)}`;
  return `no rule matched: ${defaultOf(definition)}`;
}

/** Every flag the app uses, evaluated for one context, with the reason. */
export async function explainFlags(
  { provider, repository }: { provider: FlagsProvider; repository: FlagRepository | undefined },
  context: EvaluationContext,
): Promise<Explanation[]> {
  const explanations: Explanation[] = [];
  for (const [key, entry] of Object.entries(flagCatalog)) {
    const details = await provider.resolve(entry.type, key, entry.safeDefault, context);
    const definition = repository?.get(key)?.definition;
    let reason: string = details.reason ?? 'UNKNOWN';
    if (reason === 'TARGETING_MATCH' && definition && cameFromRollout(key, definition, context)) reason = 'SPLIT';
    explanations.push({
      key,
      value: valueOrSafeDefault(details, entry.safeDefault),
      variant: details.variant,
      reason,
      errorCode: details.errorCode,
      because: because(definition, reason, details.variant, context, provider.kind),
      scope: entry.scope,
    });
  }
  return explanations;
}
