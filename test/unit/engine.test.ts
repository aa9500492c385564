import { describe, expect, it } from 'vitest';
import { compileFlags, FlagdEngine } from '../../server/flags/engine.js';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { killedForEveryone } from '../../server/flags/kill-switch.js';
import type { FlagdDocument } from '../../server/flags/types.js';

const good = { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' };

describe('the flagd engine', () => {
  it('serves the flags flagd accepts when one in the same change is refused (that one reads as not found), and says which', () => {
    const errors: string[] = [];
    const engine = new FlagdEngine({ error: (message: string) => errors.push(message), warn() {}, info() {}, debug() {} });
    const document = { flags: { good, broken: { state: 'SOMETIMES', variants: { on: true }, defaultVariant: 'on' } } } as unknown as FlagdDocument;
    engine.load(document);
    expect(engine.resolve('boolean', 'good', false, {})).toMatchObject({ value: true, reason: 'STATIC' });
    expect(engine.resolve('boolean', 'broken', false, {})).toMatchObject({ value: false, errorCode: 'FLAG_NOT_FOUND' });
    expect(errors).toEqual([expect.stringMatching(/^flag "broken" is not valid flagd and is not served: /)]);
    // Fixed by the next change: served.
    engine.update({ flags: { ...document.flags, broken: good } } as FlagdDocument, ['broken']);
    expect(engine.resolve('boolean', 'broken', false, {})).toMatchObject({ value: true });
  });

  it('gives each resolution the flag set\'s metadata beside the flag\'s own, as flagd does', () => {
    const engine = new FlagdEngine();
    engine.load({ metadata: { team: 'launch' }, flags: { good: { ...good, metadata: { owner: 'ana' } } } } as FlagdDocument);
    expect(engine.resolve('boolean', 'good', false, {}).flagMetadata).toMatchObject({ team: 'launch', owner: 'ana' });
    engine.update({ flags: { good } } as FlagdDocument, ['good']);
    expect(engine.resolve('boolean', 'good', false, {}).flagMetadata ?? {}).not.toHaveProperty('team');
  });

  it('a flag it does not serve reads as not found, with the flag set\'s metadata (none: an empty set), as flagd answers', () => {
    const engine = new FlagdEngine();
    engine.load({ metadata: { team: 'launch' }, flags: { good } } as FlagdDocument);
    expect(engine.resolve('boolean', 'missing', false, {})).toEqual({ value: false, reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND', errorMessage: expect.any(String), flagMetadata: { team: 'launch' } });
    engine.update({ flags: { good } } as FlagdDocument, ['good']);
    expect(engine.resolve('boolean', 'missing', false, {}).flagMetadata).toEqual({});
  });

  it('compiles only the flags asked for, with the document\'s shared rules', () => {
    const document = {
      $evaluators: { isAna: { '==': [{ var: 'targetingKey' }, 'ana'] } },
      flags: { good, other: good, ruled: { ...good, targeting: { if: [{ $ref: 'isAna' }, 'off', 'on'] } } },
    } as unknown as FlagdDocument;
    const compiled = compileFlags(document, ['ruled', 'missing']);
    expect([...compiled.keys()]).toEqual(['ruled']);
    const engine = new FlagdEngine();
    engine.load(document);
    expect(engine.resolve('boolean', 'ruled', true, { targetingKey: 'ana' })).toMatchObject({ value: false, reason: 'TARGETING_MATCH' });
    expect(engine.resolve('boolean', 'ruled', false, { targetingKey: 'bo' })).toMatchObject({ value: true });
  });

  it.each([
    ['disabled', { ...good, state: 'DISABLED' }, true],
    ['serving off by default', { ...good, defaultVariant: 'off' }, true],
    // flagd says DEFAULT, as it does when targeting falls through: not known for every context.
    ['the code default (null)', { ...good, defaultVariant: null }, false],
    ['live', good, false],
    ['a group killed (targeting)', { ...good, targeting: { if: [{ in: ['beta', { var: 'groups' }] }, 'off', 'on'] } }, false],
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
