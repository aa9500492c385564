import { describe, expect, it } from 'vitest';
import { FlagValidationError } from '../../server/errors.js';
import { readFlagDocument, validateFlagDefinition } from '../../server/flags/validate.js';

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
    [
      { ...valid, defaultVariant: 'maybe' },
      /^defaultVariant \| defaultVariant: "maybe" is not one of the variants \(on, off\)$/,
    ],
    [{ ...valid, variants: { on: true, off: 'no' } }, /^variants\.off \| variants\.off: must be a boolean/],
    [{ ...valid, wat: 1 }, /^wat \| wat: unknown member/],
    [{ ...valid, metadata: { team: [1] } }, /^metadata\.team \| /],
    [
      { ...valid, defaultVariant: 3 },
      /^defaultVariant \| defaultVariant: must be the name of one of the variants, or null$/,
    ],
    [{ ...valid, targeting: 'if' }, /^targeting \| /],
    [{ ...valid, targeting: [1] }, /^targeting \| /],
    // flagd's schema first, before anything compiles: it names what it does not know.
    [
      { ...valid, targeting: { no_such_operator: [1] } },
      /^targeting \| targeting: does not follow flagd's schema: must NOT have additional properties$/,
    ],
    [{ variants: { on: true }, defaultVariant: 'on' }, /^state \| state: is required$/],
    [null, /a flag definition must be a JSON object/],
    [[], /a flag definition must be a JSON object/],
  ])('refuses %j, naming the field', (candidate, message) => {
    expect(fieldOf(candidate, 'boolean')).toMatch(message);
  });

  it('refuses what flagd would read differently or fail on, naming the field: fractional or negative weights, variants that do not exist', () => {
    const rollout = (buckets: unknown[]) => ({
      ...valid,
      targeting: { fractional: [{ var: 'targetingKey' }, ...buckets] },
    });
    expect(
      fieldOf(
        rollout([
          ['on', 50.5],
          ['off', 49.5],
        ]),
        'boolean',
      ),
    ).toMatch(/^targeting\.fractional\.1\.1 \| .*whole number of 0 or more.*50\.5$/);
    expect(
      fieldOf(
        rollout([
          ['on', -5],
          ['off', 105],
        ]),
        'boolean',
      ),
    ).toMatch(/^targeting\.fractional\.1\.1 \| .*-5$/);
    expect(
      fieldOf(
        rollout([
          ['on', 50],
          ['maybe', 50],
        ]),
        'boolean',
      ),
    ).toMatch(/^targeting\.fractional\.2\.0 \| .*"maybe", which the flag does not have \(on, off\)$/);
    expect(
      fieldOf({ ...valid, targeting: { if: [{ in: ['beta', { var: 'groups' }] }, 'of', null] } }, 'boolean'),
    ).toMatch(/^targeting\.if\.1 \| .*"of"/);
    expect(fieldOf({ ...valid, targeting: { if: [true, 'on', false, 'off', 'nope'] } }, 'boolean')).toMatch(
      /^targeting\.if\.4 \| /,
    );
    // Strings in a condition are values compared, not variants.
    expect(
      validateFlagDefinition(
        'k',
        { ...valid, targeting: { if: [{ '==': [{ var: 'plan' }, 'gold'] }, 'on', 'off'] } },
        'boolean',
      ),
    ).toBeDefined();
    expect(
      validateFlagDefinition(
        'k',
        rollout([
          ['on', 1],
          ['off', 0],
        ]),
        'boolean',
      ),
    ).toBeDefined();
  });

  it('adopts what flagd accepts: flag metadata, and a null or absent default variant (the code default)', () => {
    const withMetadata = { ...valid, metadata: { team: 'growth', ticket: 42, reviewed: true } };
    expect(validateFlagDefinition('k', withMetadata, 'boolean')).toEqual(withMetadata);
    expect(validateFlagDefinition('k', { ...valid, defaultVariant: null }, 'boolean')).toEqual({
      ...valid,
      defaultVariant: null,
    });
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
    expect(readFlagDocument(document)).toEqual(document);
    // A write of that flag may use the shared rule; one naming a rule that is not there is refused.
    expect(validateFlagDefinition('k', document.flags.k, 'boolean', document.$evaluators)).toEqual(document.flags.k);
    expect(fieldOf({ ...valid, targeting: { if: [{ $ref: 'alpha' }, 'off', null] } }, 'boolean')).toBe(
      'targeting | targeting: names the shared rule "alpha", which $evaluators does not define',
    );
  });

  it('keeps the flag type: a boolean flag cannot get string variants', () => {
    expect(fieldOf({ ...valid, variants: { on: 'yes', off: 'no' } }, 'boolean')).toMatch(
      /^variants\.on \| .*must be a boolean/,
    );
  });
});

describe('readFlagDocument: a hand-edited file, read as flagd reads it', () => {
  it('takes each flag as written, whatever it holds: the engine judges each one on its own', () => {
    const doc = {
      $schema: 'https://flagd.dev/schema/v0/flags.json',
      flags: { a: valid, b: { ...valid, state: 'nope' }, 'bad key!': valid, c: 3 },
    };
    expect(readFlagDocument(doc)).toEqual(doc);
    // The type the app's code expects is the engine's and the API's to hold a flag to, not the reader's.
    const typed = {
      flags: { 'show-avatars-and-reccs': { state: 'ENABLED', variants: { on: 'yes' }, defaultVariant: 'on' } },
    };
    expect(readFlagDocument(typed)).toEqual(typed);
  });
});

describe('validation, edge by edge', () => {
  const fieldOfDocument = (candidate: unknown) => {
    try {
      readFlagDocument(candidate);
    } catch (error) {
      expect(error).toBeInstanceOf(FlagValidationError);
      return `${(error as FlagValidationError).field} | ${(error as FlagValidationError).reason}`;
    }
    throw new Error('expected a validation error');
  };

  it('walks every rule for the variants it names: nested, in lists, under a bucketing expression', () => {
    const rule = (targeting: unknown) => ({ ...valid, targeting });
    // An `if` inside an `if`'s branch, and in an `or`.
    expect(fieldOf(rule({ if: [true, { if: [false, 'on', 'nope'] }, 'off'] }), 'boolean')).toBe(
      'targeting.if.1.if.2 | targeting.if.1.if.2: names the variant "nope", which the flag does not have (on, off)',
    );
    expect(fieldOf(rule({ or: [{ if: [true, 'nope', 'off'] }] }), 'boolean')).toMatch(/^targeting\.or\.0\.if\.1 \| /);
    // A rollout's bucketing expression is walked too; a bucket without a weight is flagd's even share.
    expect(fieldOf(rule({ fractional: [{ if: [true, 'nope', 'off'] }, ['on', 50], ['off', 50]] }), 'boolean')).toMatch(
      /^targeting\.fractional\.0\.if\.1 \| /,
    );
    expect(
      validateFlagDefinition(
        'k',
        rule({ fractional: [{ cat: [{ var: 'targetingKey' }, 'salt'] }, ['on'], ['off']] }),
        'boolean',
      ),
    ).toBeDefined();
    expect(
      fieldOf(
        rule({
          fractional: [
            ['on', '50'],
            ['off', 50],
          ],
        }),
        'boolean',
      ),
    ).toBe(
      'targeting.fractional.0.1 | targeting.fractional.0.1: must be a whole number of 0 or more (a rollout\'s weights are relative shares), not "50"',
    );
    // A weight of 0 is a share of none.
    expect(
      validateFlagDefinition(
        'k',
        rule({
          fractional: [
            ['on', 0],
            ['off', 100],
          ],
        }),
        'boolean',
      ),
    ).toBeDefined();
    // An `if` whose only argument is a condition names no variant.
    expect(validateFlagDefinition('k', rule({ if: ['on'] }), 'boolean')).toBeDefined();
  });

  it('skips an empty targeting rule, and refuses one naming a shared rule that is not there', () => {
    expect(validateFlagDefinition('k', { ...valid, targeting: {} }, 'boolean')).toEqual({ ...valid, targeting: {} });
    expect(fieldOf({ ...valid, targeting: { if: [{ $ref: 'missing' }, 'on', 'off'] } }, 'boolean')).toBe(
      'targeting | targeting: names the shared rule "missing", which $evaluators does not define',
    );
  });

  it('refuses a document whose shape is wrong as a whole, naming its own member at fault, or the document', () => {
    expect(fieldOfDocument({ nothing: true })).toBe('flags | the document must have a "flags" object');
    expect(fieldOfDocument({ flags: [] })).toBe('flags | the document must have a "flags" object');
    expect(fieldOfDocument({ flags: {}, $evaluators: 'beta' })).toBe(
      '$evaluators | must be an object of rule name to JsonLogic',
    );
    expect(fieldOfDocument({ flags: {}, metadata: 'growth' })).toBe(
      'metadata | must be an object of strings, numbers and booleans',
    );
    expect(fieldOfDocument({ flags: {}, metadata: { team: [1] } })).toMatch(/^metadata \| /);
    expect(fieldOfDocument({ flags: {}, $schema: 3 })).toMatch(/^\$schema \| /);
    expect(fieldOfDocument([])).toBe(' | a flag document must be a JSON object with a "flags" object');
    expect(fieldOfDocument(null)).toBe(' | a flag document must be a JSON object with a "flags" object');
  });

  it("names the deepest field flagd's schema refuses, relative to the flag, and the shared rule a flag uses", () => {
    // flagd's schema lists dozens of issues for one bad rule (one per operator it might be): the
    // deepest says what is wrong, neither the first nor the last.
    expect(
      fieldOf({ ...valid, targeting: { if: [{ starts_with: [{ var: 'email' }, 3] }, 'on', 'off'] } }, 'boolean'),
    ).toBe(
      "targeting.if.0.starts_with.1 | targeting.if.0.starts_with.1: does not follow flagd's schema: must be string",
    );
    expect(fieldOf({ ...valid, targeting: { in: ['beta'] } }, 'boolean')).toBe(
      "targeting.in | targeting.in: does not follow flagd's schema: must NOT have fewer than 2 items",
    );
    expect(fieldOf({ ...valid, targeting: { '==': [1, 2, 3] } }, 'boolean')).toBe(
      "targeting.== | targeting.==: does not follow flagd's schema: must NOT have more than 2 items",
    );
    // A rule shared through $ref is checked as flagd reads it, in the flag, and named where it is written.
    const evaluators = { beta: { starts_with: [{ var: 'email' }, 3] } };
    expect(() =>
      validateFlagDefinition(
        'k',
        { ...valid, targeting: { if: [{ $ref: 'beta' }, 'off', null] } },
        'boolean',
        evaluators,
      ),
    ).toThrow("$evaluators.beta.starts_with.1: does not follow flagd's schema: must be string");
  });

  it('names a member whose name holds "/" as written (not as JSON Pointer escapes it)', () => {
    expect(fieldOf({ ...valid, targeting: { '/': [1, 2, 3] } }, 'boolean')).toBe(
      "targeting./ | targeting./: does not follow flagd's schema: must NOT have more than 2 items",
    );
  });

  it('reads the variant an `if` returns, never its conditions, even where a condition is a string', () => {
    const rule = (targeting: unknown) => validateFlagDefinition('k', { ...valid, targeting }, 'boolean');
    expect(rule({ if: ['cond', 'on', 'off'] })).toBeDefined(); // the first argument is a condition
    expect(rule({ if: ['cond'] })).toBeDefined(); // and so is a lone one
    expect(rule({ if: [false, 'on', 'cond', 'off', 'on'] })).toBeDefined(); // every other one too
    expect(fieldOf({ ...valid, targeting: { if: [false, 'on', 'cond', 'nope', 'on'] } }, 'boolean')).toMatch(
      /^targeting\.if\.3 \| /,
    );
  });
});

describe("what reaches flagd's compiler through the API", () => {
  const rule = (targeting: unknown) => ({
    state: 'ENABLED',
    variants: { light: 'light', dark: 'dark' },
    defaultVariant: 'light',
    targeting,
  });
  const refusal = (candidate: unknown, evaluators?: unknown) => {
    try {
      validateFlagDefinition('theme', candidate, 'string', evaluators);
    } catch (error) {
      expect(error).toBeInstanceOf(FlagValidationError);
      return (error as FlagValidationError).field;
    }
    throw new Error('expected a validation error');
  };

  // json-logic-engine looks operators up through Object.prototype: `__defineGetter__` compiled into a
  // call whose rejected promise nobody handled, and the process died (a 400, then an exit).
  it.each(Object.getOwnPropertyNames(Object.prototype))(
    'refuses the Object.prototype member %s as an operator, before anything compiles',
    async (name) => {
      const rejections: unknown[] = [];
      const onRejection = (reason: unknown) => rejections.push(reason);
      process.on('unhandledRejection', onRejection);
      try {
        expect(
          refusal(
            JSON.parse(
              `{"state":"ENABLED","variants":{"light":"light","dark":"dark"},"defaultVariant":"light","targeting":{"if":[{${JSON.stringify(name)}:[1]},"dark","light"]}}`,
            ),
          ),
        ).toMatch(/^targeting/);
        // A shared rule reaches the compiler too: its operators are checked where a flag uses it.
        expect(
          refusal(
            rule({ if: [{ $ref: 'evil' }, 'dark', 'light'] }),
            JSON.parse(`{"evil":{${JSON.stringify(name)}:[1]}}`),
          ),
        ).toMatch(/^(targeting|\$evaluators)/);
        await new Promise((resolve) => setImmediate(resolve));
        expect(rejections).toEqual([]);
      } finally {
        process.off('unhandledRejection', onRejection);
      }
    },
  );

  it('takes nested rollouts as flagd evaluates them: a variant or a weight may be a rule of its own', () => {
    const nestedWeight = rule({
      fractional: [
        { var: 'targetingKey' },
        ['dark', { if: [{ '==': [{ var: 'tier' }, 'premium'] }, 100, 0] }],
        ['light', 10],
      ],
    });
    const nestedVariant = rule({
      fractional: [
        { var: 'targetingKey' },
        [{ if: [{ '==': [{ var: 'tier' }, 'premium'] }, 'dark', 'light'] }, 50],
        ['light', 50],
      ],
    });
    expect(validateFlagDefinition('theme', nestedWeight, 'string')).toEqual(nestedWeight);
    expect(validateFlagDefinition('theme', nestedVariant, 'string')).toEqual(nestedVariant);
    // The rules inside are walked like the rest: a variant they name must exist.
    expect(
      refusal(
        rule({
          fractional: [
            [{ if: [true, 'dusk', 'light'] }, 50],
            ['light', 50],
          ],
        }),
      ),
    ).toBe('targeting.fractional.0.0.if.1');
  });

  it('refuses a definition nested deeper than 64 levels without walking it recursively', () => {
    let deep: unknown = 'light';
    for (let i = 0; i < 5000; i++) deep = [deep];
    expect(refusal(rule({ if: [true, 'dark', deep] }))).toBe('');
    expect(() => validateFlagDefinition('theme', rule({ if: [true, 'dark', deep] }), 'string')).toThrow(
      /nests deeper than 64 levels/,
    );
    // 60 levels of if-else: a person's rule, taken.
    let chain: unknown = 'light';
    for (let i = 0; i < 20; i++) chain = { if: [{ '==': [{ var: 'n' }, i] }, 'dark', chain] };
    expect(validateFlagDefinition('theme', rule(chain), 'string')).toBeDefined();
  });
});
