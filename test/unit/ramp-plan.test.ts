import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RAMP_DEFAULTS, RAMP_SPARSE_HOLDS } from '../../protocol/ramp.js';
import { BadRequestError, ConflictError } from '../../server/errors.js';
import { FlagdEngine } from '../../server/flags/engine.js';
import { guardView, judge, parseRampSettings, stageDefinition, switchVariants } from '../../server/ramp/plan.js';

const killed = { state: 'DISABLED' as const, variants: { on: true, off: false }, defaultVariant: 'on' };
const settings = { stages: [10, 25, 50, 100], holdMs: 30_000, maxErrorRate: 0.05, minCalls: 20 };
const calm = (calls: number, failed = 0) => ({ calls, failed, breakerOpened: 0 });

describe('the settings of a ramp', () => {
  it('default to the documented ones', () => {
    expect(parseRampSettings(undefined)).toEqual({ ...RAMP_DEFAULTS, stages: [...RAMP_DEFAULTS.stages] });
    expect(parseRampSettings({ stages: [100] }).stages).toEqual([100]);
    expect(parseRampSettings({ stages: [1, 2, 99, 100] }).stages).toEqual([1, 2, 99, 100]);
    expect(parseRampSettings({ holdMs: 1000, minCalls: 0, maxErrorRate: 0 })).toMatchObject({
      holdMs: 1000,
      minCalls: 0,
    });
  });

  it.each([
    [{ stages: [] }, 'stages'],
    [{ stages: [10, 10, 100] }, 'stages'],
    [{ stages: [10, 99] }, 'stages'],
    [{ stages: [101] }, 'stages'],
    [{ stages: '10,100' }, 'stages'],
    [{ holdMs: 500 }, 'holdMs'],
    [{ holdMs: 1500.5 }, 'holdMs'],
    [{ maxErrorRate: -0.1 }, 'maxErrorRate'],
    [{ minCalls: 2.5 }, 'minCalls'],
    [{ nope: 1 }, 'nope'],
    [[], ''],
  ])('refuse %j, naming %s', (body, field) => {
    let error: unknown;
    try {
      parseRampSettings(body);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(BadRequestError);
    expect((error as BadRequestError).details.field).toBe(field);
  });

  it('say what is wrong, naming the field', () => {
    expect(() => parseRampSettings({ stages: [50, 25, 100] })).toThrow(
      'stages: stages must increase. Stages are increasing whole percentages from 1 to 100 ending at 100; holdMs is at least 1000.',
    );
    expect(() => parseRampSettings({ stages: [10, 50] })).toThrow(/^stages: stages must end at 100\./);
    expect(() => parseRampSettings({ nope: 1 })).toThrow(
      /^nope: is not a setting of a ramp \(stages, holdMs, maxErrorRate, minCalls\)\./,
    );
    expect(() => parseRampSettings(7)).toThrow(/^body: /);
  });
});

describe('a stage as the flag is written', () => {
  it('is enabled, killed by default, live for the share by fractional; plain enabled at 100', () => {
    expect(stageDefinition(killed, 25)).toEqual({
      state: 'ENABLED',
      variants: { on: true, off: false },
      defaultVariant: 'off',
      targeting: {
        fractional: [
          ['on', 25],
          ['off', 75],
        ],
      },
    });
    expect(stageDefinition({ ...killed, targeting: { if: [true, 'off', null] } }, 100)).toEqual({
      state: 'ENABLED',
      variants: { on: true, off: false },
      defaultVariant: 'on',
    });
  });

  it('needs a variant serving each value', () => {
    expect(() => switchVariants({ state: 'DISABLED', variants: { on: true } })).toThrow(ConflictError);
    expect(() => switchVariants({ state: 'DISABLED', variants: { off: false } })).toThrow(
      'A guarded restore needs the kill switch to have a variant serving true and one serving false.',
    );
    expect(switchVariants({ state: 'DISABLED', variants: { yes: true, no: false } })).toEqual({
      live: 'yes',
      killed: 'no',
    });
  });

  it('keeps every viewer live at one stage live at the next (flagd evaluates the written flags)', () => {
    const stages = [1, 10, 25, 50, 75, 99, 100];
    const engines = stages.map((percent) => {
      const engine = new FlagdEngine();
      engine.load({ flags: { ks: stageDefinition(killed, percent) } });
      return engine;
    });
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 30 }), (viewer) => {
        const values = engines.map((engine) => engine.resolve('boolean', 'ks', false, { targetingKey: viewer }).value);
        return values.every((live, n) => n === 0 || !values[n - 1] || live);
      }),
      { numRuns: 500 },
    );
  });
});

describe('the guard', () => {
  it('rolls back when a breaker opened, naming the service', () => {
    const verdict = judge(
      { avatars: { calls: 3, failed: 3, breakerOpened: 1 }, recommendations: calm(50) },
      settings,
      25,
      10,
    );
    expect(verdict).toEqual({
      action: 'rollback',
      reason: 'avatars: its circuit breaker opened (3 of 3 calls failed) while live for 25 % of viewers',
    });
  });

  it('rolls back past the failed share over at least minCalls, not below them, not at the limit', () => {
    expect(judge({ recommendations: calm(20, 2) }, settings, 10, 10)).toMatchObject({
      action: 'rollback',
      reason: 'recommendations: 2 of 20 calls failed (10 %, limit 5.0 %) while live for 10 % of viewers',
    });
    expect(judge({ recommendations: calm(19, 19) }, settings, 10, 10).action).toBe('hold');
    expect(judge({ recommendations: calm(20, 1) }, settings, 10, 10).action).toBe('hold');
    expect(judge({ recommendations: calm(1, 1) }, { ...settings, minCalls: 0 }, 10, 10).action).toBe('rollback');
    expect(judge({ recommendations: calm(0) }, { ...settings, minCalls: 0, maxErrorRate: 0 }, 10, 10).action).toBe(
      'hold',
    );
  });

  it('holds for the hold, then advances with enough calls from one service', () => {
    const services = { avatars: calm(2), recommendations: calm(20) };
    expect(judge(services, settings, 10, settings.holdMs - 1)).toEqual({
      action: 'hold',
      enough: true,
      said: 'no failure past the limit so far',
    });
    expect(judge(services, settings, 10, settings.holdMs)).toEqual({
      action: 'advance',
      enough: true,
      said: 'held 30 s with no failure past the limit',
    });
  });

  it('with too few calls, waits and says so, then advances after the longer limit, saying it could not judge', () => {
    const services = { avatars: calm(2), recommendations: calm(7) };
    expect(judge(services, settings, 10, 1000)).toMatchObject({
      action: 'hold',
      enough: false,
      said: '7 of the 20 calls needed to judge so far',
    });
    expect(judge(services, settings, 10, settings.holdMs)).toMatchObject({
      action: 'hold',
      said: 'waiting for calls: 7 of 20 so far; advances with enough, or after 120 s without',
    });
    const sparse = judge(services, settings, 10, settings.holdMs * RAMP_SPARSE_HOLDS);
    expect(sparse).toEqual({
      action: 'advance',
      enough: false,
      said: 'only 7 of 20 calls in 120 s: too few to judge, advanced anyway',
    });
    expect(judge({}, settings, 10, settings.holdMs * RAMP_SPARSE_HOLDS - 1).action).toBe('hold');
    // With no minimum, a stage without a call says so rather than claim a judgement.
    expect(judge({}, { ...settings, minCalls: 0 }, 10, settings.holdMs)).toEqual({
      action: 'advance',
      enough: true,
      said: 'held 30 s with no calls made (none needed to judge)',
    });
  });
});

describe('the guard as the page shows it', () => {
  it('says the verdict in words, and whether the stage could be judged', () => {
    const services = { avatars: calm(3) };
    expect(guardView(services, judge(services, settings, 10, 10))).toEqual({
      services,
      verdict: '3 of the 20 calls needed to judge so far',
      enough: false,
    });
    const failing = { avatars: calm(20, 20) };
    expect(guardView(failing, judge(failing, settings, 10, 10))).toEqual({
      services: failing,
      verdict: 'avatars: 20 of 20 calls failed (100 %, limit 5.0 %) while live for 10 % of viewers',
      enough: true,
    });
  });
});
