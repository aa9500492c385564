import type { EvaluationContext, FlagValue, JsonValue } from '@openfeature/server-sdk';
import { flagCatalog } from './catalog.js';
import { valueOrSafeDefault, type FlagsProvider } from './provider.js';
import type { FlagRepository } from './repository.js';
import type { FlagDefinition } from './types.js';
import { compileFlag } from './engine.js';

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

/** A copy of some JsonLogic with every `fractional` rule replaced by the sentinel variant. */
/** The default, in words: a variant, or none (the code's safe default). */
function defaultOf(definition: FlagDefinition): string {
  return typeof definition.defaultVariant === 'string' ? `the default variant (${definition.defaultVariant})` : "no default variant: the code's safe default";
}

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

/** Whether one JsonLogic condition holds for a context (evaluated by flagd-core, as the flag would be). */
function holds(condition: JsonValue, context: EvaluationContext): boolean {
  const probe = compileFlag('probe', { state: 'ENABLED', variants: { yes: true, no: false }, defaultVariant: 'no', targeting: { if: [condition, 'yes', 'no'] } });
  return probe.evaluate(context).value === true;
}

/** A condition in words, for the shapes the admin page writes; anything else as its JSON. */
function conditionInWords(condition: JsonValue): string {
  const inList = (condition as { in?: JsonValue[] } | null)?.in;
  if (Array.isArray(inList) && inList.length === 2) {
    const [left, right] = inList;
    if ((left as { var?: string } | null)?.var === 'targetingKey' && Array.isArray(right)) return 'the viewer is listed by key';
    if (typeof left === 'string' && (right as { var?: string } | null)?.var === 'groups') return `in group ${left}`;
  }
  return JSON.stringify(condition);
}

/** The rollout's bucket that served a variant: "rollout: trending (20 %)". */
function bucketInWords(fractional: JsonValue, variant: string | undefined): string {
  const buckets = (Array.isArray(fractional) ? fractional : []).filter((entry): entry is [string, number] => Array.isArray(entry) && typeof entry[0] === 'string');
  const total = buckets.reduce((sum, [, weight]) => sum + (typeof weight === 'number' ? weight : 1), 0) || 1;
  const bucket = buckets.find(([name]) => name === variant);
  return bucket ? `rollout: ${variant} (${Math.round((100 * (typeof bucket[1] === 'number' ? bucket[1] : 1)) / total)} %)` : 'rollout';
}

/**
 * Which rule decided, in words: the first `if` condition that holds (numbered), a rollout bucket,
 * or the default. For a flag's own reason (DISABLED, STATIC, ...) the sentence says what it means.
 */
function because(definition: FlagDefinition | undefined, reason: string, variant: string | undefined, context: EvaluationContext, sourceKind: string): string {
  if (!definition) return reason === 'ERROR' ? 'the flag is missing or failed: the safe default' : `decided by ${sourceKind} (${reason})`;
  if (reason === 'DISABLED') return 'the flag is disabled: the safe default for everyone';
  if (reason === 'ERROR') return 'the evaluation failed: the safe default';
  const targeting = definition.targeting as JsonValue | undefined;
  if (!targeting || (typeof targeting === 'object' && Object.keys(targeting).length === 0)) return `no targeting: ${defaultOf(definition)}`;
  const top = targeting as { if?: JsonValue[]; fractional?: JsonValue };
  if (top.fractional !== undefined) return bucketInWords(top.fractional, variant);
  if (Array.isArray(top.if)) {
    const parts = top.if;
    const rules = Math.floor(parts.length / 2);
    for (let i = 0; i < rules; i++) {
      if (holds(parts[2 * i]!, context)) return `${conditionInWords(parts[2 * i]!)} (rule ${i + 1} of ${rules})`;
    }
    const otherwise = parts.length % 2 ? parts[parts.length - 1] : null;
    const fractional = (otherwise as { fractional?: JsonValue } | null)?.fractional;
    if (fractional !== undefined) return `no rule matched; ${bucketInWords(fractional, variant)}`;
    return `no rule matched: ${defaultOf(definition)}`;
  }
  return reason === 'DEFAULT' ? `custom targeting gave no variant: ${defaultOf(definition)}` : 'custom targeting';
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
