import { describe, expect, it } from 'vitest';
import { switchState } from '../../public/js/switch-state.js';
import { buildTargeting } from '../../protocol/targeting.js';

const VARIANTS = { on: true, off: false };
const flag = (over: Record<string, unknown> = {}) =>
  ({ state: 'ENABLED', variants: VARIANTS, defaultVariant: 'on', ...over }) as Parameters<typeof switchState>[0];
const targeted = (rules: Parameters<typeof buildTargeting>[0], defaultVariant = 'on') =>
  flag({ defaultVariant, targeting: buildTargeting(rules) });

describe('what the kill switch does, in words', () => {
  it.each([
    ['disabled', flag({ state: 'DISABLED' }), 'killed', 'Disabled: every viewer gets the safe default (off).'],
    ['live', flag(), 'live', 'Live for everyone.'],
    ['default off', flag({ defaultVariant: 'off' }), 'killed', 'Killed for everyone: the default serves off.'],
    [
      'default null (the code default)',
      flag({ defaultVariant: null }),
      'killed',
      'Killed for everyone: the default serves off.',
    ],
    [
      'a group killed',
      targeted({ overrides: [], groups: [{ group: 'beta', variant: 'off' }], rollout: null }),
      'partial',
      'Killed for group beta; live for everyone else.',
    ],
    [
      'viewers and a group killed, a rollout',
      targeted({
        overrides: [
          { key: 'maya', variant: 'off' },
          { key: 'theo', variant: 'off' },
        ],
        groups: [{ group: 'beta', variant: 'off' }],
        rollout: [
          { variant: 'on', weight: 60 },
          { variant: 'off', weight: 40 },
        ],
      }),
      'partial',
      'Killed for viewers maya and theo and group beta; killed for 40 % of everyone else.',
    ],
    [
      'staff kept live while everyone else is killed',
      targeted({ overrides: [], groups: [{ group: 'staff', variant: 'on' }], rollout: null }, 'off'),
      'partial',
      'Live for group staff; killed for everyone else.',
    ],
    [
      'targeting that kills nobody',
      targeted({ overrides: [{ key: 'maya', variant: 'on' }], groups: [], rollout: null }),
      'live',
      'Live for everyone (targeting names viewer maya).',
    ],
    [
      'a rollout at 100 % off',
      targeted({
        overrides: [],
        groups: [],
        rollout: [
          { variant: 'on', weight: 0 },
          { variant: 'off', weight: 100 },
        ],
      }),
      'killed',
      'Killed for everyone: the rollout serves off to all.',
    ],
  ])('%s', (_, definition, state, detail) => {
    const result = switchState(definition);
    expect(result.state).toBe(state);
    expect(result.detail).toBe(detail);
    expect(result.headline).toBe(
      { killed: 'Killed: third party off', live: 'Live: third party on', partial: 'Partly killed' }[state],
    );
  });

  it('custom JsonLogic is said to be custom, not guessed', () => {
    const result = switchState(
      flag({ targeting: { if: [{ sem_ver: [{ var: 'version' }, '>=', '2.0.0'] }, 'off', null] } }),
    );
    expect(result).toMatchObject({ state: 'partial', headline: 'Targeted: custom rules' });
  });
});
