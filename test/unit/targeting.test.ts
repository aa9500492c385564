import { FlagdCore } from '@openfeature/flagd-core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildTargeting, checkRules, emptyRules, mergePatchFor, parseTargeting } from '../../protocol/targeting.js';
import { applyMergePatch } from '../../server/flags/merge-patch.js';
import { defaultFlagDocument, RECS_FLAVOUR } from '../../server/flags/catalog.js';
import { validateFlagDefinition } from '../../server/flags/validate.js';

const variants = ['classic', 'trending', 'friends'];
const flag = (targeting: unknown) => ({
  state: 'ENABLED',
  variants: { classic: 'classic', trending: 'trending', friends: 'friends' },
  defaultVariant: 'classic',
  ...(targeting ? { targeting } : {}),
});

function engineWith(targeting: unknown) {
  const core = new FlagdCore();
  core.setConfigurations(JSON.stringify({ flags: { f: flag(targeting) } }));
  return (context: Record<string, unknown>) => core.resolveStringEvaluation('f', 'none', context as never).value;
}

const key = fc.stringMatching(/^[a-z][a-z0-9]{0,7}$/);
const variant = fc.constantFrom(...variants);
const rulesArbitrary = fc.record({
  overrides: fc.uniqueArray(fc.record({ key, variant }), { selector: (o) => o.key, maxLength: 4 }),
  groups: fc.uniqueArray(fc.record({ group: key, variant }), { selector: (g) => g.group, maxLength: 3 }),
  rollout: fc.option(
    fc.tuple(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100 })).map(([a, b]) => {
      const [low, high] = [Math.min(a, b), Math.max(a, b)];
      return [
        { variant: 'classic', weight: low },
        { variant: 'trending', weight: high - low },
        { variant: 'friends', weight: 100 - high },
      ].filter((share) => share.weight > 0);
    }),
    { nil: null },
  ),
});

describe('targeting rules <-> flagd targeting', () => {
  it('no rules means no targeting (the default for everyone)', () => {
    expect(buildTargeting(emptyRules())).toBeNull();
    expect(parseTargeting(undefined)).toEqual(emptyRules());
  });

  it("reads back the default document's flavour targeting", () => {
    const rules = parseTargeting(defaultFlagDocument().flags[RECS_FLAVOUR]!.targeting);
    expect(rules).toEqual({
      overrides: [],
      groups: [{ group: 'beta', variant: 'friends' }],
      rollout: [
        { variant: 'classic', weight: 80 },
        { variant: 'trending', weight: 20 },
      ],
    });
  });

  it('round-trips any rules, writes valid flagd, and evaluates as the rules say', () => {
    fc.assert(
      fc.property(rulesArbitrary, key, fc.array(key, { maxLength: 2 }), (rules, viewer, groups) => {
        const targeting = buildTargeting(rules);
        const parsed = parseTargeting(targeting)!;
        // Overrides come back grouped by variant; compare as sets.
        expect(new Set(parsed.overrides.map((o) => `${o.key}=${o.variant}`))).toEqual(
          new Set(rules.overrides.map((o) => `${o.key}=${o.variant}`)),
        );
        expect(parsed.groups).toEqual(rules.groups);
        expect(parsed.rollout).toEqual(rules.rollout?.length ? rules.rollout : null);
        validateFlagDefinition('f', flag(targeting), 'string');

        const expected =
          rules.overrides.find((o) => o.key === viewer)?.variant ??
          rules.groups.find((g) => groups.includes(g.group))?.variant ??
          (rules.rollout?.length === 1 ? rules.rollout[0]!.variant : undefined);
        const actual = engineWith(targeting)({ targetingKey: viewer, groups });
        if (expected) expect(actual).toBe(expected);
        else if (!rules.rollout?.length) expect(actual).toBe('classic');
        else expect(rules.rollout.map((s) => s.variant)).toContain(actual);
      }),
      { numRuns: 300 },
    );
  });

  it('writes new targeting over old as a merge patch that really replaces it', () => {
    fc.assert(
      fc.property(rulesArbitrary, rulesArbitrary, (before, after) => {
        const [from, to] = [buildTargeting(before), buildTargeting(after)];
        const patched = applyMergePatch({ targeting: from }, { targeting: mergePatchFor(from, to) }) as {
          targeting?: unknown;
        };
        expect(patched.targeting ?? null).toEqual(to);
      }),
      { numRuns: 300 },
    );
    // The naive patch is what the RFC says it is: a merge, and here an invalid rule.
    const naive = applyMergePatch({ if: [1, 'a', null] }, { fractional: [['a', 100]] });
    expect(Object.keys(naive as object)).toEqual(['if', 'fractional']);
  });

  it('leaves custom JsonLogic alone (not editable as rules)', () => {
    expect(parseTargeting({ if: [{ '>': [{ var: 'age' }, 18] }, 'trending', null] })).toBeUndefined();
    expect(parseTargeting({ fractional: [['classic', '80']] })).toBeUndefined();
  });

  it('says what is wrong with rules before anything is written', () => {
    expect(checkRules({ ...emptyRules(), rollout: [{ variant: 'classic', weight: 70 }] }, variants)).toMatch(
      /add up to 70 %/,
    );
    expect(checkRules({ ...emptyRules(), overrides: [{ key: '', variant: 'classic' }] }, variants)).toMatch(
      /needs a viewer key/,
    );
    expect(checkRules({ ...emptyRules(), groups: [{ group: 'beta', variant: 'nope' }] }, variants)).toMatch(
      /not a variant/,
    );
    expect(checkRules({ ...emptyRules(), rollout: [{ variant: 'classic', weight: 100 }] }, variants)).toBe('');
  });
});

describe('percentage rollouts', () => {
  const viewers = Array.from({ length: 10_000 }, (_, i) => `viewer-${i}`);

  it.each([1, 10, 30, 50, 90])('are accurate: %i %% target lands within 2 points over 10,000 viewers', (percent) => {
    const evaluate = engineWith(
      buildTargeting({
        ...emptyRules(),
        rollout: [
          { variant: 'trending', weight: percent },
          { variant: 'classic', weight: 100 - percent },
        ],
      }),
    );
    const share = viewers.filter((viewer) => evaluate({ targetingKey: viewer }) === 'trending').length / viewers.length;
    expect(Math.abs(share * 100 - percent)).toBeLessThanOrEqual(2);
  });

  it('are stable: a viewer keeps its variant across evaluations, engines and restarts, and a growing rollout only adds viewers', () => {
    const at = (percent: number) =>
      engineWith(
        buildTargeting({
          ...emptyRules(),
          rollout: [
            { variant: 'trending', weight: percent },
            { variant: 'classic', weight: 100 - percent },
          ],
        }),
      );
    const first = at(20);
    const again = at(20); // a new engine, as after a restart
    const wider = at(40);
    for (const viewer of viewers.slice(0, 2000)) {
      const value = first({ targetingKey: viewer });
      expect(first({ targetingKey: viewer })).toBe(value);
      expect(again({ targetingKey: viewer })).toBe(value);
      if (value === 'trending') expect(wider({ targetingKey: viewer })).toBe('trending');
    }
  });
});
