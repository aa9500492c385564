import { z } from 'zod';
import { RAMP_DEFAULTS, RAMP_SPARSE_HOLDS, rampTargeting } from '../../protocol/ramp.js';
import type { GuardFigures, ServiceFigures } from '../../protocol/ramp.js';
import { BadRequestError, ConflictError } from '../errors.js';
import type { FlagDefinition } from '../flags/types.js';

/** What a person chooses when starting a ramp; every member has a default (protocol/ramp.js). */
export interface RampSettings {
  stages: number[];
  holdMs: number;
  maxErrorRate: number;
  minCalls: number;
}

const settingsSchema = z
  .object({
    stages: z
      .array(z.number().int().min(1).max(100), { error: 'stages must be a list of whole percentages' })
      .min(1)
      .max(20)
      .refine((stages) => stages.every((percent, i) => i === 0 || percent > stages[i - 1]!), {
        error: 'stages must increase',
      })
      .refine((stages) => stages.at(-1) === 100, { error: 'stages must end at 100' })
      .default([...RAMP_DEFAULTS.stages]),
    holdMs: z.number().int().min(1000).max(3_600_000).default(RAMP_DEFAULTS.holdMs),
    maxErrorRate: z.number().min(0).max(1).default(RAMP_DEFAULTS.maxErrorRate),
    minCalls: z.number().int().min(0).max(1_000_000).default(RAMP_DEFAULTS.minCalls),
  })
  .strict();

/** The body of POST .../ramp, with the defaults filled in; a 400 naming the first bad field. */
export function parseRampSettings(body: unknown): RampSettings {
  const result = settingsSchema.safeParse(body ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field =
    issue.code === 'unrecognized_keys' ? issue.keys[0]! : issue.path.length > 0 ? String(issue.path[0]) : '';
  const why =
    issue.code === 'unrecognized_keys'
      ? 'is not a setting of a ramp (stages, holdMs, maxErrorRate, minCalls)'
      : issue.message;
  throw new BadRequestError(
    `${field || 'body'}: ${why}. Stages are increasing whole percentages from 1 to 100 ending at 100; holdMs is at least 1000.`,
    { field },
  );
}

/** The kill switch's variants that serve `true` (live) and `false` (killed): a ramp needs both. */
export function switchVariants(definition: FlagDefinition): { live: string; killed: string } {
  const named = (value: boolean) =>
    Object.keys(definition.variants).find((name) => definition.variants[name] === value);
  const live = named(true);
  const killed = named(false);
  if (live === undefined || killed === undefined)
    throw new ConflictError(
      'A guarded restore needs the kill switch to have a variant serving true and one serving false.',
    );
  return { live, killed };
}

/**
 * The kill switch as one stage writes it: enabled, live for `percent` % of viewers by flagd's
 * `fractional` on the viewer key, killed for the rest; at 100 %, plain enabled with no targeting.
 * Built from the definition the ramp started from, so whatever else the flag holds is kept.
 */
export function stageDefinition(start: FlagDefinition, percent: number): FlagDefinition {
  const { live, killed } = switchVariants(start);
  const { targeting: _replaced, ...rest } = start;
  if (percent >= 100) return { ...rest, state: 'ENABLED', defaultVariant: live };
  return { ...rest, state: 'ENABLED', defaultVariant: killed, targeting: rampTargeting(live, killed, percent) };
}

export type Verdict =
  | { action: 'rollback'; reason: string }
  | { action: 'hold'; said: string; enough: boolean }
  | { action: 'advance'; said: string; enough: boolean };

const percentOf = (share: number) => `${(share * 100).toFixed(share < 0.1 ? 1 : 0)} %`;
const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;

/** A service that failed the stage: a breaker that opened, or too large a failed share of enough calls. */
function failure(service: string, figures: ServiceFigures, settings: RampSettings): string | undefined {
  if (figures.breakerOpened > 0)
    return `${service}: its circuit breaker opened (${figures.failed} of ${figures.calls} calls failed)`;
  if (figures.calls === 0 || figures.calls < settings.minCalls) return undefined;
  const share = figures.failed / figures.calls;
  if (share <= settings.maxErrorRate) return undefined;
  return `${service}: ${figures.failed} of ${figures.calls} calls failed (${percentOf(share)}, limit ${percentOf(settings.maxErrorRate)})`;
}

/**
 * What the guard makes of one stage so far: roll back when a service's breaker opened or its failed
 * share passed the limit over at least `minCalls` calls; otherwise hold for `holdMs`, then advance
 * once some service has made `minCalls` calls. A stage that never gets them advances after
 * RAMP_SPARSE_HOLDS holds, and says so: with so little traffic there is little load to protect,
 * but the guard never claims to have judged what it did not see.
 */
export function judge(
  services: Record<string, ServiceFigures>,
  settings: RampSettings,
  percent: number,
  elapsedMs: number,
): Verdict {
  for (const [service, figures] of Object.entries(services)) {
    const failed = failure(service, figures, settings);
    if (failed) return { action: 'rollback', reason: `${failed} while live for ${percent} % of viewers` };
  }
  const most = Math.max(0, ...Object.values(services).map((figures) => figures.calls));
  const enough = most >= settings.minCalls;
  if (elapsedMs < settings.holdMs)
    return {
      action: 'hold',
      enough,
      said: enough
        ? 'no failure past the limit so far'
        : `${most} of the ${settings.minCalls} calls needed to judge so far`,
    };
  if (enough)
    return {
      action: 'advance',
      enough,
      said:
        most === 0
          ? `held ${seconds(elapsedMs)} with no calls made (none needed to judge)`
          : `held ${seconds(elapsedMs)} with no failure past the limit`,
    };
  const sparseLimit = settings.holdMs * RAMP_SPARSE_HOLDS;
  if (elapsedMs >= sparseLimit)
    return {
      action: 'advance',
      enough,
      said: `only ${most} of ${settings.minCalls} calls in ${seconds(elapsedMs)}: too few to judge, advanced anyway`,
    };
  return {
    action: 'hold',
    enough,
    said: `waiting for calls: ${most} of ${settings.minCalls} so far; advances with enough, or after ${seconds(sparseLimit)} without`,
  };
}

/** The figures as the page shows them. */
export function guardView(services: Record<string, ServiceFigures>, verdict: Verdict): GuardFigures {
  return {
    services,
    verdict: verdict.action === 'rollback' ? verdict.reason : verdict.said,
    enough: verdict.action === 'rollback' ? true : verdict.enough,
  };
}
