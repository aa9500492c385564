import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { THEME } from '../../server/flags/catalog.js';
import { startTestApp, type TestApp } from '../helpers/app.js';

/**
 * What a token holder can send as targeting reaches flagd's compiler: nothing sent may take the
 * process down or leave a rejection nobody handles. An unhandled rejection in this process fails
 * the run (vitest reports it), and each property below also listens for one itself.
 */
describe('hostile targeting through the API', () => {
  let app: TestApp;
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  beforeAll(async () => {
    process.on('unhandledRejection', onRejection);
    app = await startTestApp({ API_RATE_LIMIT_PER_MIN: '1000000' });
  });
  afterAll(async () => {
    process.off('unhandledRejection', onRejection);
    await app.stop();
  });

  const settle = () => new Promise((resolve) => setTimeout(resolve, 20));
  const patchTargeting = (targeting: unknown) => app.patchFlag(THEME, JSON.stringify({ targeting }));

  it('answers 400 to every Object.prototype member used as an operator, and the server lives on', async () => {
    for (const name of Object.getOwnPropertyNames(Object.prototype)) {
      const sent = await app.patchFlag(THEME, `{"targeting":{"if":[{${JSON.stringify(name)}:[1]},"dark","light"]}}`);
      expect(sent.status, name).toBe(400);
      expect(sent.body.field, name).toMatch(/^targeting/);
    }
    await settle();
    expect(rejections).toEqual([]);
    expect((await app.request('/healthz')).status).toBe(200);
    expect(app.repository!.get(THEME)!.definition.targeting).toBeUndefined();
  });

  it('answers random JsonLogic with a 200 or a 400 naming the field, never a 5xx and never a fault', async () => {
    const operator = fc.oneof(
      fc.constantFrom(
        'if',
        '==',
        '===',
        '!=',
        'in',
        'var',
        'and',
        'or',
        '!',
        'cat',
        'fractional',
        'sem_ver',
        'starts_with',
        'ends_with',
        'map',
        'filter',
        'reduce',
        'merge',
        'preserve',
        'throw',
        'try',
        '$ref',
      ),
      fc.constantFrom(...Object.getOwnPropertyNames(Object.prototype)),
      fc.string({ maxLength: 12 }),
    );
    const { rule } = fc.letrec((tie) => ({
      rule: fc.oneof(
        { depthSize: 'small' },
        fc.jsonValue({ maxDepth: 1 }),
        fc.constantFrom('light', 'dark'),
        tie('call'),
        fc.array(tie('rule'), { maxLength: 4 }),
      ),
      call: fc.tuple(operator, fc.array(tie('rule'), { maxLength: 4 })).map(([name, args]) => ({ [name]: args })),
    }));
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(rule, async (targeting) => {
        const sent = await patchTargeting(
          typeof targeting === 'object' && targeting !== null && !Array.isArray(targeting)
            ? targeting
            : { if: [targeting, 'dark', 'light'] },
        );
        statuses.set(sent.status, (statuses.get(sent.status) ?? 0) + 1);
        expect([200, 400], JSON.stringify(targeting).slice(0, 300)).toContain(sent.status);
        if (sent.status === 400) expect(typeof sent.body.field).toBe('string');
        // Whatever was taken is evaluated for a viewer without a fault.
        await app.provider.resolve('string', THEME, 'light', { targetingKey: 'viewer-1', groups: ['beta'] });
        if (sent.status === 200) expect((await app.patchFlag(THEME, { targeting: null })).status).toBe(200);
      }),
      { numRuns: 300 },
    );
    await settle();
    expect(rejections).toEqual([]);
    expect((await app.request('/healthz')).status).toBe(200);
    console.log(`random targeting: statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  });

  it('refuses a body nested past the limit with a 400 naming it, before anything walks it', async () => {
    for (const depth of [65, 1000, 5000]) {
      const sent = await app.patchFlag(
        THEME,
        `{"targeting":{"if":[true,"dark",${'['.repeat(depth)}${']'.repeat(depth)}]}}`,
      );
      expect(sent.status, String(depth)).toBe(400);
      expect(sent.body.message).toMatch(/nests deeper than 64 levels/);
    }
    // ~14 KB of nested objects: once a stack overflow in zod, and a 500.
    const objects = `${'{"a":'.repeat(2500)}1${'}'.repeat(2500)}`;
    const sent = await app.patchFlag(THEME, `{"metadata":${objects}}`);
    expect(sent.status).toBe(400);
    expect(sent.body.message).toMatch(/nests deeper than 64 levels/);
  });
});
