import { readFile } from 'node:fs/promises';
import { FlagdCore } from '@openfeature/flagd-core';
import type { FlagValue } from '@openfeature/server-sdk';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTargeting, mergePatchFor } from '../../protocol/targeting.js';
import { flagCatalog, KILL_SWITCH, pageFlagKeys, RECS_FLAVOUR, THEME } from '../../server/flags/catalog.js';
import { evaluationContext, viewerFor } from '../../server/feed/viewer.js';
import { sleep, startTestApp, type TestApp } from '../helpers/app.js';
import type { Socket } from 'socket.io-client';

const VIEWERS = ['maya', 'theo', 'priya', 'jonas', 'lena', 'sam', ...Array.from({ length: 24 }, (_, i) => `user-${i}`)];
const VARIANTS: Record<string, string[]> = {
  [KILL_SWITCH]: ['on', 'off'],
  [RECS_FLAVOUR]: ['classic', 'trending', 'friends'],
  [THEME]: ['light', 'dark', 'aurora'],
};

interface Tab {
  viewer: string;
  current: Record<string, FlagValue>;
  /** flag_update events that did not change this tab's value: must stay empty. */
  pointless: unknown[];
}

/** One random edit of one page flag: kill, restore, a new default, new targeting, or none. */
const editArbitrary = fc.constantFrom(KILL_SWITCH, RECS_FLAVOUR, THEME).chain((key) => {
  const variants = VARIANTS[key]!;
  const variant = fc.constantFrom(...variants);
  const rules = fc.record({
    overrides: fc.uniqueArray(fc.record({ key: fc.constantFrom(...VIEWERS), variant }), {
      selector: (o) => o.key,
      maxLength: 5,
    }),
    groups: fc.uniqueArray(fc.record({ group: fc.constantFrom('beta', 'staff'), variant }), {
      selector: (g) => g.group,
      maxLength: 2,
    }),
    rollout: fc.option(
      fc.integer({ min: 0, max: 100 }).map((weight) => [
        { variant: variants[0]!, weight },
        { variant: variants[1]!, weight: 100 - weight },
      ]),
      { nil: null },
    ),
  });
  return fc.oneof(
    fc.constant({ key, patch: { state: 'DISABLED' } }),
    fc.constant({ key, patch: { state: 'ENABLED' } }),
    variant.map((v) => ({ key, patch: { defaultVariant: v } })),
    rules.map((r) => ({ key, patch: { targeting: buildTargeting(r) } })),
    fc.constant({ key, patch: { targeting: null } }),
  );
});

describe('the per-viewer push, as a property', () => {
  let app: TestApp;
  const tabs: Tab[] = [];
  const sockets: Socket[] = [];

  beforeAll(async () => {
    app = await startTestApp({ API_RATE_LIMIT_PER_MIN: '100000' });
    // 30 viewers, 1 to 3 tabs each: 60 sockets.
    for (const [index, viewer] of VIEWERS.entries()) {
      for (let t = 0; t < (index % 3) + 1; t++) {
        const socket = await app.socket({ cookie: `viewer=${viewer}` });
        const tab: Tab = { viewer, current: {}, pointless: [] };
        socket.on('flag_update', ({ key, value }: { key: string; value: FlagValue }) => {
          if (JSON.stringify(tab.current[key]) === JSON.stringify(value)) tab.pointless.push({ key, value });
          tab.current[key] = value;
        });
        tab.current = { ...socket.snapshots[0] };
        tabs.push(tab);
        sockets.push(socket);
      }
    }
  });
  afterAll(() => app.stop());

  /**
   * The oracle: what a fresh flagd engine of its own says each page flag is for a viewer, from the
   * flag file as written (the PATCH answers once it is on disk), with the safe default on an error.
   * Independent of the pusher's provider and of anything it holds in memory.
   */
  function fresh(engine: FlagdCore, viewer: string): Record<string, FlagValue> {
    const context = evaluationContext(viewerFor(viewer));
    const values: Record<string, FlagValue> = {};
    for (const key of pageFlagKeys) {
      const entry = flagCatalog[key]!;
      const details = engine.resolve(entry.type, key, entry.safeDefault, context);
      values[key] = details.errorCode || details.value === undefined ? entry.safeDefault : details.value;
    }
    return values;
  }

  async function converged(): Promise<boolean> {
    const engine = new FlagdCore();
    engine.setConfigurations(await readFile(app.flagsFile, 'utf8'));
    for (const tab of tabs) {
      if (JSON.stringify(tab.current) !== JSON.stringify(fresh(engine, tab.viewer))) return false;
    }
    return true;
  }

  it('after every random edit, each socket holds exactly its own fresh value, and got no pointless event', async () => {
    expect(tabs).toHaveLength(60);
    let edits = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(editArbitrary, { minLength: 2, maxLength: 8 }), async (sequence) => {
        for (const { key, patch } of sequence) {
          // New targeting is sent as a proper merge patch over the old (members it drops nulled).
          const current = (await app.request(`/api/flags/${key}`)).body.definition.targeting ?? null;
          const body: Record<string, unknown> = { ...patch };
          if ('targeting' in body) body.targeting = mergePatchFor(current, body.targeting);
          const res = await app.patchFlag(key, body);
          expect(res.status, JSON.stringify(res.body)).toBe(200);
          edits++;
          await app.realtime.pusher.idle();
          const deadline = Date.now() + 3000;
          while (!(await converged())) {
            if (Date.now() > deadline)
              throw new Error(`sockets did not converge after ${key} ${JSON.stringify(patch)}`);
            await sleep(5);
          }
        }
        await app.delivered(sockets); // any stray event has arrived by now
        expect(tabs.flatMap((tab) => tab.pointless)).toEqual([]);
      }),
      { numRuns: 40 },
    );
    console.log(`push property: ${edits} edits over 60 sockets of 30 viewers`);
    expect(edits).toBeGreaterThanOrEqual(80);
    // Each edit waits for the flag file's fsync: about 60 ms here, twice that on a busy machine.
  }, 60_000);
});
