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
    [{ ...valid, metadata: {} }, /^metadata \| /],
    [{ ...valid, targeting: 'if' }, /^targeting \| /],
    [{ ...valid, targeting: [1] }, /^targeting \| /],
    [{ ...valid, targeting: { no_such_operator: [1] } }, /^targeting \| targeting: is not valid JsonLogic/],
    [{ variants: { on: true }, defaultVariant: 'on' }, /^state \| state: is required$/],
    [null, /a flag definition must be a JSON object/],
    [[], /a flag definition must be a JSON object/],
  ])('refuses %j, naming the field', (candidate, message) => {
    expect(fieldOf(candidate, 'boolean')).toMatch(message);
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
