import { describe, expect, it } from 'vitest';
import { FlagValidationError } from '../../server/errors.js';
import { validateFlagDefinition, validateFlagDocument } from '../../server/flags/validate.js';

const valid = { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' };

function fieldOf(candidate: unknown, type?: 'boolean' | 'string'): string {
  try {
    validateFlagDefinition('k', candidate, type);
  } catch (error) {
    expect(error).toBeInstanceOf(FlagValidationError);
    return `${(error as FlagValidationError).field} | ${(error as Error).message}`;
  }
  throw new Error('expected a validation error');
}

describe('validateFlagDefinition', () => {
  it('accepts a valid flag, with or without targeting', () => {
    expect(validateFlagDefinition('k', valid, 'boolean')).toEqual(valid);
    const targeted = { ...valid, targeting: { if: [{ in: ['beta', { var: 'groups' }] }, 'off', null] } };
    expect(validateFlagDefinition('k', targeted, 'boolean')).toEqual(targeted);
  });

  it.each([
    [{ ...valid, state: 'ON' }, /^state \| state: must be "ENABLED" or "DISABLED"$/],
    [{ ...valid, variants: {} }, /^variants \| variants: must name at least one variant$/],
    [{ ...valid, variants: 'x' }, /^variants \| /],
    [{ ...valid, defaultVariant: 'maybe' }, /^defaultVariant \| defaultVariant: "maybe" is not one of the variants \(on, off\)$/],
    [{ ...valid, variants: { on: true, off: 'no' } }, /^variants\.off \| variants\.off: must be a boolean/],
    [{ ...valid, wat: 1 }, /^wat \| wat: unknown member/],
    [{ ...valid, metadata: { team: [1] } }, /^metadata\.team \| /],
    [{ ...valid, defaultVariant: 3 }, /^defaultVariant \| defaultVariant: must be the name of one of the variants, or null$/],
    [{ ...valid, targeting: 'if' }, /^targeting \| /],
    [{ ...valid, targeting: [1] }, /^targeting \| /],
    [{ ...valid, targeting: { no_such_operator: [1] } }, /^targeting \| targeting: is not valid JsonLogic/],
    [{ variants: { on: true }, defaultVariant: 'on' }, /^state \| state: is required$/],
    [null, /a flag definition must be a JSON object/],
    [[], /a flag definition must be a JSON object/],
  ])('refuses %j, naming the field', (candidate, message) => {
    expect(fieldOf(candidate, 'boolean')).toMatch(message);
  });

  it('refuses what flagd would read differently or fail on, naming the field: fractional or negative weights, variants that do not exist', () => {
    const rollout = (buckets: unknown[]) => ({ ...valid, targeting: { fractional: [{ var: 'targetingKey' }, ...buckets] } });
    expect(fieldOf(rollout([['on', 50.5], ['off', 49.5]]), 'boolean')).toMatch(/^targeting\.fractional\.1\.1 \| .*whole number of 0 or more.*50\.5$/);
    expect(fieldOf(rollout([['on', -5], ['off', 105]]), 'boolean')).toMatch(/^targeting\.fractional\.1\.1 \| .*-5$/);
    expect(fieldOf(rollout([['on', 50], ['maybe', 50]]), 'boolean')).toMatch(/^targeting\.fractional\.2\.0 \| .*"maybe", which the flag does not have \(on, off\)$/);
    expect(fieldOf({ ...valid, targeting: { if: [{ in: ['beta', { var: 'groups' }] }, 'of', null] } }, 'boolean')).toMatch(/^targeting\.if\.1 \| .*"of"/);
    expect(fieldOf({ ...valid, targeting: { if: [true, 'on', false, 'off', 'nope'] } }, 'boolean')).toMatch(/^targeting\.if\.4 \| /);
    // Strings in a condition are values compared, not variants.
    expect(validateFlagDefinition('k', { ...valid, targeting: { if: [{ '==': [{ var: 'plan' }, 'gold'] }, 'on', 'off'] } }, 'boolean')).toBeDefined();
    expect(validateFlagDefinition('k', rollout([['on', 1], ['off', 0]]), 'boolean')).toBeDefined();
  });

  it('adopts what flagd accepts: flag metadata, and a null or absent default variant (the code default)', () => {
    const withMetadata = { ...valid, metadata: { team: 'growth', ticket: 42, reviewed: true } };
    expect(validateFlagDefinition('k', withMetadata, 'boolean')).toEqual(withMetadata);
    expect(validateFlagDefinition('k', { ...valid, defaultVariant: null }, 'boolean')).toEqual({ ...valid, defaultVariant: null });
    const { defaultVariant: _none, ...absent } = valid;
    expect(validateFlagDefinition('k', absent, 'boolean')).toEqual(absent);
  });

  it('adopts a document with shared rules ($evaluators, used with $ref) and flag-set metadata, and keeps every member', () => {
    const document = {
      $schema: 'https://flagd.dev/schema/v0/flags.json',
      metadata: { owner: 'growth', version: '3' },
      $evaluators: { beta: { in: ['beta', { var: 'groups' }] } },
      flags: { k: { ...valid, targeting: { if: [{ $ref: 'beta' }, 'off', null] } } },
    };
    expect(validateFlagDocument(document)).toEqual(document);
    // A $ref to a rule that is not there does not compile.
    expect(() => validateFlagDocument({ ...document, $evaluators: {} })).toThrow(FlagValidationError);
    // flagd's own schema decides the rest: a flag set's "version" is a string there.
    expect(() => validateFlagDocument({ ...document, metadata: { version: 3 } })).toThrow(/metadata\.version: does not follow flagd's schema: must be string/);
  });

  it('keeps the flag type: a boolean flag cannot get string variants', () => {
    expect(fieldOf({ ...valid, variants: { on: 'yes', off: 'no' } }, 'boolean')).toMatch(/^variants\.on \| .*must be a boolean/);
  });
});

describe('validateFlagDocument', () => {
  it('accepts a flagd document and keeps $schema', () => {
    const doc = { $schema: 'https://flagd.dev/schema/v0/flags.json', flags: { a: valid, b: { ...valid, variants: { x: 'x' }, defaultVariant: 'x' } } };
    expect(validateFlagDocument(doc)).toEqual(doc);
  });

  it('names the flag and field at fault', () => {
    expect(() => validateFlagDocument({ flags: { a: valid, b: { ...valid, state: 'nope' } } })).toThrow(/^flags\.b\.state: must be/);
    expect(() => validateFlagDocument({ nothing: true })).toThrow(/flags/);
    expect(() => validateFlagDocument({ flags: { 'bad key!': valid } })).toThrow(/flags\.bad key!: is not a valid flag key/);
  });

  it('holds a flag the app knows to the type its code expects', () => {
    const doc = { flags: { 'show-avatars-and-reccs': { state: 'ENABLED', variants: { on: 'yes' }, defaultVariant: 'on' } } };
    expect(() => validateFlagDocument(doc)).toThrow(/^flags\.show-avatars-and-reccs\.variants\.on: must be a boolean/);
  });
});
