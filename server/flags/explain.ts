import { FlagdCore } from '@openfeature/flagd-core';
import type { EvaluationContext, FlagValue, JsonValue } from '@openfeature/server-sdk';
import { flagCatalog } from './catalog.js';
import { valueOrSafeDefault } from './provider.js';
import type { FlagSource } from './source.js';
import type { FlagDefinition } from './types.js';
import { flagType } from './validate.js';

export interface Explanation {
  key: string;
  value: FlagValue;
  variant: string | undefined;
  /** OpenFeature's reason, with SPLIT when the value came from a percentage rollout. */
  reason: string;
  errorCode?: string | undefined;
  scope: 'page' | 'server';
}

const SPLIT_SENTINEL = '__rollout__';

/** A copy of some JsonLogic with every `fractional` rule replaced by the sentinel variant. */
function withoutFractional(logic: JsonValue): JsonValue {
  if (Array.isArray(logic)) return logic.map(withoutFractional);
  if (logic && typeof logic === 'object') {
    if (Object.hasOwn(logic, 'fractional')) return SPLIT_SENTINEL;
    return Object.fromEntries(Object.entries(logic).map(([k, v]) => [k, withoutFractional(v)]));
  }
  return logic;
}

const probe = new FlagdCore(undefined, { error() {}, warn() {}, info() {}, debug() {} });

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
  probe.setConfigurations(JSON.stringify({ flags: { [key]: probeFlag } }));
  return probe.resolve(flagType(definition), key, first, context).variant === SPLIT_SENTINEL;
}

/** Every flag the app uses, evaluated for one context, with the reason. */
export async function explainFlags(source: FlagSource, context: EvaluationContext): Promise<Explanation[]> {
  const explanations: Explanation[] = [];
  for (const [key, entry] of Object.entries(flagCatalog)) {
    const details = await source.provider.resolve(entry.type, key, entry.safeDefault, context);
    const definition = source.store?.get(key)?.definition;
    let reason: string = details.reason ?? 'UNKNOWN';
    if (reason === 'TARGETING_MATCH' && definition && cameFromRollout(key, definition, context)) reason = 'SPLIT';
    explanations.push({
      key,
      value: valueOrSafeDefault(details, entry.safeDefault),
      variant: details.variant,
      reason,
      errorCode: details.errorCode,
      scope: entry.scope,
    });
  }
  return explanations;
}
