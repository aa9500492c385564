import { describe, expect, it } from 'vitest';
import { FlagValidationError } from '../../server/errors.js';
import { flagType, validateFlagDefinition, validateFlagDocument } from '../../server/flags/validate.js';

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

describe('validation, edge by edge', () => {
  const fieldOfDocument = (candidate: unknown) => {
    try {
      validateFlagDocument(candidate);
    } catch (error) {
      expect(error).toBeInstanceOf(FlagValidationError);
      return `${(error as FlagValidationError).field} | ${(error as FlagValidationError).reason}`;
    }
    throw new Error('expected a validation error');
  };

  it('takes flag keys of 1 to 128 letters, digits, "_", "." and "-", starting with a letter or digit', () => {
    for (const key of ['a', '9', 'a_b.c-d', `a${'b'.repeat(127)}`]) expect(Object.keys(validateFlagDocument({ flags: { [key]: valid } }).flags)).toEqual([key]);
    for (const key of ['', '_a', '-a', '.a', `a${'b'.repeat(128)}`, 'a/b', 'a b']) {
      expect(fieldOfDocument({ flags: { [key]: valid } })).toBe(`flags.${key} | is not a valid flag key (letters, digits, "_", "." and "-")`);
    }
  });

  it('judges a new flag\'s type by its first variant, for every JSON type', () => {
    expect(validateFlagDefinition('k', { state: 'ENABLED', variants: { a: 'x', b: 'y' } }).variants).toEqual({ a: 'x', b: 'y' });
    expect(validateFlagDefinition('k', { state: 'ENABLED', variants: { a: 1, b: 2.5 } }).variants).toEqual({ a: 1, b: 2.5 });
    expect(validateFlagDefinition('k', { state: 'ENABLED', variants: { a: { n: 1 }, b: { n: 2 } } }).variants).toEqual({ a: { n: 1 }, b: { n: 2 } });
    expect(fieldOf({ state: 'ENABLED', variants: { a: 'x', b: 2 } })).toBe('variants.b | variants.b: must be a string like the flag\'s other variants (got number)');
    expect(fieldOf({ state: 'ENABLED', variants: { a: 1, b: '2' } })).toBe('variants.b | variants.b: must be a number like the flag\'s other variants (got string)');
    expect(fieldOf({ state: 'ENABLED', variants: { a: 'x', b: [1] } })).toBe('variants.b | variants.b: must be a string like the flag\'s other variants (got array)');
    expect(fieldOf({ state: 'ENABLED', variants: { a: 'x', b: { n: 1 } } })).toBe('variants.b | variants.b: must be a string like the flag\'s other variants (got object)');
    expect(fieldOf({ state: 'ENABLED', variants: { a: true, b: null } })).toBe('variants.b | variants.b: must be a boolean like the flag\'s other variants (got null)');
    expect(fieldOf({ state: 'ENABLED', variants: { on: true } }, 'string')).toBe('variants.on | variants.on: must be a string like the flag\'s other variants (got boolean)');
  });

  it('the type a flag has: its first variant\'s, an object for JSON or no value', () => {
    expect(flagType({ state: 'ENABLED', variants: { a: true } })).toBe('boolean');
    expect(flagType({ state: 'ENABLED', variants: { a: 'x' } })).toBe('string');
    expect(flagType({ state: 'ENABLED', variants: { a: 3 } })).toBe('number');
    expect(flagType({ state: 'ENABLED', variants: { a: [1] } })).toBe('object');
    expect(flagType({ state: 'ENABLED', variants: { a: null } })).toBe('object');
    expect(flagType({ state: 'ENABLED', variants: {} })).toBe('object');
  });

  it('returns only the members written: no undefined targeting, metadata or default', () => {
    const definition = validateFlagDefinition('k', { state: 'DISABLED', variants: { on: true }, targeting: undefined, metadata: undefined, defaultVariant: undefined });
    expect(Object.keys(definition).sort()).toEqual(['state', 'variants']);
  });

  it('says which member is unknown, and what a flag has', () => {
    expect(fieldOf({ ...valid, targetting: {} }, 'boolean')).toBe('targetting | targetting: unknown member; a flag has only state, variants, defaultVariant, targeting and metadata');
    expect(fieldOf({ ...valid, variants: { '': true } }, 'boolean')).toBe('variants | variants: variant names must not be empty');
    expect(fieldOf({ ...valid, metadata: 'growth' }, 'boolean')).toBe('metadata | metadata: must be an object of strings, numbers and booleans');
    expect(fieldOf({ state: 'ENABLED' }, 'boolean')).toBe('variants | variants: is required');
    expect(fieldOf({ ...valid, variants: [true] }, 'boolean')).toBe('variants | variants: must be an object of variant name to value');
  });

  it('walks every rule for the variants it names: nested, in lists, under a bucketing expression', () => {
    const rule = (targeting: unknown) => ({ ...valid, targeting });
    // An `if` inside an `if`'s branch, and in an `or`.
    expect(fieldOf(rule({ if: [true, { if: [false, 'on', 'nope'] }, 'off'] }), 'boolean')).toBe('targeting.if.1.if.2 | targeting.if.1.if.2: names the variant "nope", which the flag does not have (on, off)');
    expect(fieldOf(rule({ or: [{ if: [true, 'nope', 'off'] }] }), 'boolean')).toMatch(/^targeting\.or\.0\.if\.1 \| /);
    // A rollout's bucketing expression is walked too; a bucket without a weight is flagd's even share.
    expect(fieldOf(rule({ fractional: [{ if: [true, 'nope', 'off'] }, ['on', 50], ['off', 50]] }), 'boolean')).toMatch(/^targeting\.fractional\.0\.if\.1 \| /);
    expect(validateFlagDefinition('k', rule({ fractional: [{ cat: [{ var: 'targetingKey' }, 'salt'] }, ['on'], ['off']] }), 'boolean')).toBeDefined();
    expect(fieldOf(rule({ fractional: [['on', '50'], ['off', 50]] }), 'boolean')).toBe('targeting.fractional.0.1 | targeting.fractional.0.1: must be a whole number of 0 or more (a rollout\'s weights are relative shares), not "50"');
    // A weight of 0 is a share of none.
    expect(validateFlagDefinition('k', rule({ fractional: [['on', 0], ['off', 100]] }), 'boolean')).toBeDefined();
    // An `if` whose only argument is a condition names no variant.
    expect(validateFlagDefinition('k', rule({ if: ['on'] }), 'boolean')).toBeDefined();
  });

  it('skips an empty targeting rule, and refuses one naming a shared rule that is not there', () => {
    expect(validateFlagDefinition('k', { ...valid, targeting: {} }, 'boolean')).toEqual({ ...valid, targeting: {} });
    expect(fieldOf({ ...valid, targeting: { if: [{ $ref: 'missing' }, 'on', 'off'] } }, 'boolean')).toBe('targeting | targeting: is not valid JsonLogic (an unknown operator or a malformed rule)');
  });

  it('names the document\'s own member at fault, or the document', () => {
    expect(fieldOfDocument({ nothing: true })).toBe('flags | the document must have a "flags" object');
    expect(fieldOfDocument({ flags: [] })).toBe('flags | the document must have a "flags" object');
    expect(fieldOfDocument({ flags: {}, $evaluators: 'beta' })).toBe('$evaluators | must be an object of rule name to JsonLogic');
    expect(fieldOfDocument([])).toBe(' | a flag document must be a JSON object with a "flags" object');
    expect(fieldOfDocument(null)).toBe(' | a flag document must be a JSON object with a "flags" object');
    // A flag that is not an object: the flag is the field.
    expect(fieldOfDocument({ flags: { a: 3 } })).toBe('flags.a | a flag definition must be a JSON object');
    expect(fieldOfDocument({ flags: {}, metadata: { version: 3 } })).toBe("metadata.version | does not follow flagd's schema: must be string");
  });

  it('names the deepest field flagd\'s schema refuses, relative to the flag, and the shared rule a flag uses', () => {
    // flagd's schema lists dozens of issues for one bad rule (one per operator it might be): the
    // deepest says what is wrong, neither the first nor the last.
    expect(fieldOf({ ...valid, targeting: { if: [{ starts_with: [{ var: 'email' }, 3] }, 'on', 'off'] } }, 'boolean')).toBe(
      "targeting.if.0.starts_with.1 | targeting.if.0.starts_with.1: does not follow flagd's schema: must be string",
    );
    expect(fieldOf({ ...valid, targeting: { in: ['beta'] } }, 'boolean')).toBe("targeting.in | targeting.in: does not follow flagd's schema: must NOT have fewer than 2 items");
    expect(fieldOfDocument({ flags: { k: { ...valid, targeting: { '==': [1, 2, 3] } } } })).toBe("flags.k.targeting.== | does not follow flagd's schema: must NOT have more than 2 items");
    // A rule shared through $ref is checked as flagd reads it, in the flag, and named where it is written.
    const evaluators = { beta: { starts_with: [{ var: 'email' }, 3] } };
    expect(() => validateFlagDefinition('k', { ...valid, targeting: { if: [{ $ref: 'beta' }, 'off', null] } }, 'boolean', evaluators)).toThrow(
      "$evaluators.beta.starts_with.1: does not follow flagd's schema: must be string",
    );
  });

  it('names a member whose name holds "/" or "~" as written (not as JSON Pointer escapes it)', () => {
    expect(fieldOfDocument({ flags: {}, metadata: { 'team/growth': [1] } })).toBe("metadata.team/growth | does not follow flagd's schema: must be string,number,boolean");
    expect(fieldOfDocument({ flags: {}, metadata: { 'a~b': [1] } })).toBe("metadata.a~b | does not follow flagd's schema: must be string,number,boolean");
  });

  it('refuses, as a whole, a document flagd cannot read at all (a value JSON cannot hold)', () => {
    expect(fieldOfDocument({ flags: {}, extra: 10n })).toBe(' | is not valid flagd (Do not know how to serialize a BigInt)');
  });

  it('reads the variant an `if` returns, never its conditions, even where a condition is a string', () => {
    const rule = (targeting: unknown) => validateFlagDefinition('k', { ...valid, targeting }, 'boolean');
    expect(rule({ if: ['cond', 'on', 'off'] })).toBeDefined(); // the first argument is a condition
    expect(rule({ if: ['cond'] })).toBeDefined(); // and so is a lone one
    expect(rule({ if: [false, 'on', 'cond', 'off', 'on'] })).toBeDefined(); // every other one too
    expect(fieldOf({ ...valid, targeting: { if: [false, 'on', 'cond', 'nope', 'on'] } }, 'boolean')).toMatch(/^targeting\.if\.3 \| /);
  });
});
