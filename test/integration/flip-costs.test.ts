import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { FlagdEngine } from '../../server/flags/engine.js';
import { validateFlagDefinition } from '../../server/flags/validate.js';
import { FLIP_CHANNEL } from '../../server/observability/flip-trace.js';
import { startTestApp, type TestApp } from '../helpers/app.js';

const valid = { state: 'ENABLED' as const, variants: { on: true, off: false }, defaultVariant: 'on' };

describe("a flip's fixed costs, paid once per definition", () => {
  it('validation: a definition seen before is valid again, given as a copy; refusals are refused every time', () => {
    const first = validateFlagDefinition('k', { ...valid }, 'boolean');
    first.variants.on = 'mutated';
    expect(validateFlagDefinition('k', { ...valid }, 'boolean')).toEqual(valid);
    for (let i = 0; i < 2; i++)
      expect(() => validateFlagDefinition('k', { ...valid, defaultVariant: 'nope' }, 'boolean')).toThrow(
        /defaultVariant/,
      );
    // What else validation reads is part of what it remembers: a shared rule gone is refused.
    const targeting = { if: [{ $ref: 'beta' }, 'off', null] };
    const evaluators = { beta: { in: ['beta', { var: 'groups' }] } };
    expect(validateFlagDefinition('k', { ...valid, targeting }, 'boolean', evaluators).targeting).toEqual(targeting);
    expect(() => validateFlagDefinition('k', { ...valid, targeting }, 'boolean', {})).toThrow(/beta/);
    expect(() => validateFlagDefinition('k', { ...valid }, 'string')).toThrow(/must be a string/);
  });

  it('compiling: a definition compiled before serves as it did; new shared rules are compiled afresh', () => {
    const engine = new FlagdEngine();
    const document = (evaluators: Record<string, unknown>) => ({
      $evaluators: evaluators,
      flags: { k: { ...valid, targeting: { if: [{ $ref: 'who' }, 'off', null] } } },
    });
    const asBeta = { targetingKey: 'x', groups: ['beta'] };
    engine.load(document({ who: { in: ['beta', { var: 'groups' }] } }));
    expect(engine.resolve('boolean', 'k', true, asBeta).value).toBe(false);
    engine.update(document({ who: { in: ['staff', { var: 'groups' }] } }), ['k']);
    expect(engine.resolve('boolean', 'k', true, asBeta).value).toBe(true);
    engine.update(document({ who: { in: ['beta', { var: 'groups' }] } }), ['k']);
    expect(engine.resolve('boolean', 'k', true, asBeta).value).toBe(false);
    // One the engine cannot serve stays unservable when it comes back.
    const broken = { flags: { k: { ...valid, targeting: { nonsense_operator: [1] } } } };
    for (let i = 0; i < 2; i++) {
      engine.update(broken, ['k']);
      expect(engine.resolve('boolean', 'k', true, {}).errorCode).toBe('PARSE_ERROR');
    }
  });
});

describe("a flip's steps, as a benchmark times them", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(() => app.stop());

  it('are published in order on the diagnostics channel, from the handler to the durable write', async () => {
    const socket = await app.socket({ cookie: 'viewer=maya' });
    const steps: string[] = [];
    const listen = (message: unknown) => steps.push((message as { step: string }).step);
    subscribe(FLIP_CHANNEL, listen);
    try {
      expect((await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' })).status).toBe(200);
      await app.delivered([socket]);
    } finally {
      unsubscribe(FLIP_CHANNEL, listen);
    }
    const order = [
      'handler (limit, token, body parsed)',
      'repository turn',
      'validated',
      'compare-and-set',
      'compiled',
      'event heard',
      'announced',
      'push turn',
      'first evaluation',
    ];
    expect(steps.filter((step) => order.includes(step))).toEqual(order);
    expect(steps).toContain('durable');
    expect(steps).toContain('push done');
  });
});
