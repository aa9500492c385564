import { describe, expect, it } from 'vitest';
import { compileFlags, FlagdEngine } from '../../server/flags/engine.js';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { killedForEveryone } from '../../server/flags/kill-switch.js';
import type { FlagdDocument } from '../../server/flags/types.js';

const good = { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' };

describe('the flagd engine', () => {
  it('serves the flags it can when one in the same change cannot be served: that one answers its safe default with PARSE_ERROR, and says why', () => {
    const engine = new FlagdEngine();
    const document = {
      flags: { good, broken: { state: 'SOMETIMES', variants: { on: true }, defaultVariant: 'on' } },
    } as unknown as FlagdDocument;
    expect(engine.load(document)).toEqual(new Map([['broken', 'state must be "ENABLED" or "DISABLED"']]));
    expect(engine.resolve('boolean', 'good', false, {})).toMatchObject({ value: true, reason: 'STATIC' });
    expect(engine.resolve('boolean', 'broken', false, {})).toMatchObject({
      value: false,
      reason: 'ERROR',
      errorCode: 'PARSE_ERROR',
    });
    expect(engine.problems()).toEqual(new Map([['broken', 'state must be "ENABLED" or "DISABLED"']]));
    // Fixed by the next change: served, and no longer a problem.
    expect(engine.update({ flags: { ...document.flags, broken: good } } as FlagdDocument, ['broken'])).toEqual(
      new Map(),
    );
    expect(engine.resolve('boolean', 'broken', false, {})).toMatchObject({ value: true });
    expect(engine.problems().size).toBe(0);
  });

  it.each([
    ['a key flagd does not allow', 'bad key!', good, /is not a valid flag key/],
    ['not an object', 'k', 3, /is not a JSON object/],
    ['no variants', 'k', { state: 'ENABLED', variants: {} }, /variants must be an object naming at least one variant/],
    [
      'a default variant it does not have',
      'k',
      { ...good, defaultVariant: 'maybe' },
      /defaultVariant must name one of the variants/,
    ],
    ['targeting that is not an object', 'k', { ...good, targeting: [1] }, /targeting must be a JsonLogic object/],
    [
      'an unknown operator',
      'k',
      { ...good, targeting: { if: [{ no_such_operator: [1] }, 'on', 'off'] } },
      /targeting uses "no_such_operator"/,
    ],
    [
      'an Object.prototype member as operator',
      'k',
      { ...good, targeting: JSON.parse('{"if":[{"__defineGetter__":[1]},"on","off"]}') },
      /targeting uses "__defineGetter__"/,
    ],
    [
      'a shared rule the document does not define',
      'k',
      { ...good, targeting: { if: [{ $ref: 'missing' }, 'on', 'off'] } },
      /names the shared rule "missing"/,
    ],
    [
      'nesting past the limit',
      'k',
      { ...good, targeting: { if: [true, 'on', JSON.parse('['.repeat(100) + ']'.repeat(100))] } },
      /nests deeper than 64 levels/,
    ],
  ])('does not serve a flag with %s, and never compiles it', (_, key, flag, problem) => {
    const engine = new FlagdEngine();
    const problems = engine.load({ flags: { [key]: flag, good } } as unknown as FlagdDocument);
    expect(problems.get(key)).toMatch(problem);
    expect(engine.resolve('boolean', key, false, { targetingKey: 'a' })).toMatchObject({
      value: false,
      errorCode: 'PARSE_ERROR',
    });
    expect(engine.resolve('boolean', 'good', false, {})).toMatchObject({ value: true });
  });

  it('evaluates nested rollouts as flagd does: a weight or a variant that is a rule of its own', () => {
    const engine = new FlagdEngine();
    const variants = { red: 'red', blue: 'blue', fallback: 'fallback' };
    const premium = { '==': [{ var: 'tier' }, 'premium'] };
    engine.load({
      flags: {
        weight: {
          state: 'ENABLED',
          variants,
          defaultVariant: 'fallback',
          targeting: { fractional: [{ var: 'targetingKey' }, ['red', { if: [premium, 100, 0] }], ['blue', 10]] },
        },
        variant: {
          state: 'ENABLED',
          variants,
          defaultVariant: 'fallback',
          targeting: { fractional: [{ var: 'targetingKey' }, [{ if: [premium, 'red', 'blue'] }, 100], ['blue', 0]] },
        },
      },
    } as unknown as FlagdDocument);
    for (const targetingKey of ['a', 'b', 'c', 'd']) {
      expect(engine.resolve('string', 'weight', 'x', { targetingKey, tier: 'premium' }).value).toBe('red');
      expect(engine.resolve('string', 'weight', 'x', { targetingKey, tier: 'basic' }).value).toBe('blue');
      expect(engine.resolve('string', 'variant', 'x', { targetingKey, tier: 'premium' }).value).toBe('red');
      expect(engine.resolve('string', 'variant', 'x', { targetingKey, tier: 'basic' }).value).toBe('blue');
    }
  });

  it("gives each resolution the flag set's metadata beside the flag's own, as flagd does", () => {
    const engine = new FlagdEngine();
    engine.load({
      metadata: { team: 'launch' },
      flags: { good: { ...good, metadata: { owner: 'ana' } } },
    } as FlagdDocument);
    expect(engine.resolve('boolean', 'good', false, {}).flagMetadata).toMatchObject({ team: 'launch', owner: 'ana' });
    engine.update({ flags: { good } } as FlagdDocument, ['good']);
    expect(engine.resolve('boolean', 'good', false, {}).flagMetadata ?? {}).not.toHaveProperty('team');
  });

  it("a flag it does not serve reads as not found, with the flag set's metadata (none: an empty set), as flagd answers", () => {
    const engine = new FlagdEngine();
    engine.load({ metadata: { team: 'launch' }, flags: { good } } as FlagdDocument);
    expect(engine.resolve('boolean', 'missing', false, {})).toEqual({
      value: false,
      reason: 'ERROR',
      errorCode: 'FLAG_NOT_FOUND',
      errorMessage: expect.any(String),
      flagMetadata: { team: 'launch' },
    });
    engine.update({ flags: { good } } as FlagdDocument, ['good']);
    expect(engine.resolve('boolean', 'missing', false, {}).flagMetadata).toEqual({});
  });

  it("compiles only the flags asked for, with the document's shared rules", () => {
    const document = {
      $evaluators: { isAna: { '==': [{ var: 'targetingKey' }, 'ana'] } },
      flags: { good, other: good, ruled: { ...good, targeting: { if: [{ $ref: 'isAna' }, 'off', 'on'] } } },
    } as unknown as FlagdDocument;
    const compiled = compileFlags(document, ['ruled', 'missing']);
    expect([...compiled.keys()]).toEqual(['ruled']);
    const engine = new FlagdEngine();
    engine.load(document);
    expect(engine.resolve('boolean', 'ruled', true, { targetingKey: 'ana' })).toMatchObject({
      value: false,
      reason: 'TARGETING_MATCH',
    });
    expect(engine.resolve('boolean', 'ruled', false, { targetingKey: 'bo' })).toMatchObject({ value: true });
  });

  it.each([
    ['disabled', { ...good, state: 'DISABLED' }, true],
    ['serving off by default', { ...good, defaultVariant: 'off' }, true],
    // flagd says DEFAULT, as it does when targeting falls through: not known for every context.
    ['the code default (null)', { ...good, defaultVariant: null }, false],
    ['live', good, false],
    [
      'a group killed (targeting)',
      { ...good, targeting: { if: [{ in: ['beta', { var: 'groups' }] }, 'off', 'on'] } },
      false,
    ],
    // Off for all, but only by evaluating targeting: not known for every context, so not this.
    ['targeting that serves off to everyone', { ...good, targeting: { if: [true, 'off', 'off'] } }, false],
  ])('the kill switch %s is killed for everyone: %s', async (_, definition, killed) => {
    const engine = new FlagdEngine();
    engine.load({ flags: { [KILL_SWITCH]: definition } } as unknown as FlagdDocument);
    expect(await killedForEveryone(engine)).toBe(killed);
  });

  it('a kill switch that is not there is killed for everyone (the safe default serves)', async () => {
    const engine = new FlagdEngine();
    engine.load({ flags: { good } } as FlagdDocument);
    expect(await killedForEveryone(engine)).toBe(true);
  });
});
