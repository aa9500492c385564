import { describe, expect, it } from 'vitest';
import { BadRequestError } from '../../server/errors.js';
import { applyMergePatch } from '../../server/flags/merge-patch.js';

describe('applyMergePatch (RFC 7386)', () => {
  // The examples of RFC 7386, appendix A.
  it.each([
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [
      ['a', 'b'],
      ['c', 'd'],
      ['c', 'd'],
    ],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ])('%j + %j = %j', (target, patch, expected) => {
    expect(applyMergePatch(target, patch)).toEqual(expected);
  });

  it('does not modify the target', () => {
    const target = { state: 'ENABLED', variants: { on: true } };
    applyMergePatch(target, { state: 'DISABLED', variants: { off: false } });
    expect(target).toEqual({ state: 'ENABLED', variants: { on: true } });
  });

  it.each(['__proto__', 'constructor', 'prototype'])(
    'refuses the member %s at any depth, leaving Object.prototype clean',
    (member) => {
      const top = JSON.parse(`{"${member}": {"polluted": true}}`);
      const deep = JSON.parse(`{"variants": {"${member}": {"polluted": true}}}`);
      expect(() => applyMergePatch({}, top)).toThrow(BadRequestError);
      // The 400 names the member by its path from the top, in its text and in its field.
      const refusal = (patch: unknown) => {
        try {
          applyMergePatch({ variants: {} }, patch);
        } catch (error) {
          return { message: (error as BadRequestError).message, details: (error as BadRequestError).details };
        }
        throw new Error('the patch was accepted');
      };
      expect(refusal(top)).toEqual({
        message: `${member}: this member name is not allowed`,
        details: { field: member },
      });
      expect(refusal(deep)).toEqual({
        message: `variants.${member}: this member name is not allowed`,
        details: { field: `variants.${member}` },
      });
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    },
  );
});
