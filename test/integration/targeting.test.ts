import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH, LOG_LEVEL, RECS_FLAVOUR, THEME } from '../../server/flags/catalog.js';
import { record, startTestApp, waitFor, type TestApp } from '../helpers/app.js';

describe('targeting, explained and pushed', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ API_RATE_LIMIT_PER_MIN: '1000' });
  });
  afterAll(() => app.stop());
  afterEach(() => app.closeSockets());

  const explain = async (user: string) => {
    const { status, body } = await app.request(`/api/explain?user=${user}`);
    expect(status).toBe(200);
    return Object.fromEntries(body.flags.map((f: any) => [f.key, f]));
  };

  it('explains each flag for a viewer: value, variant and reason', async () => {
    const theo = await explain('theo'); // beta
    expect(theo[KILL_SWITCH]).toMatchObject({ value: true, variant: 'on', reason: 'STATIC' });
    expect(theo[RECS_FLAVOUR]).toMatchObject({ value: 'friends', reason: 'TARGETING_MATCH' });
    expect(theo[LOG_LEVEL]).toMatchObject({ reason: 'DISABLED', scope: 'server' });
    const jonas = await explain('jonas'); // not beta: the 80/20 rollout
    expect(jonas[RECS_FLAVOUR]).toMatchObject({ reason: 'SPLIT' });
    expect(['classic', 'trending']).toContain(jonas[RECS_FLAVOUR].value);
    // Which rule or bucket decided, in words.
    expect(theo[KILL_SWITCH].because).toBe('no targeting: the default variant (on)');
    expect(theo[RECS_FLAVOUR].because).toBe('in group beta (rule 1 of 1)');
    expect(jonas[RECS_FLAVOUR].because).toBe(
      `no rule matched; rollout: ${jonas[RECS_FLAVOUR].value} (${jonas[RECS_FLAVOUR].value === 'classic' ? 80 : 20} %)`,
    );
    expect(theo[LOG_LEVEL].because).toBe('the flag is disabled: the safe default for everyone');
    await app.patchFlag(THEME, {
      targeting: {
        if: [{ in: [{ var: 'targetingKey' }, ['maya']] }, 'dark', { in: ['staff', { var: 'groups' }] }, 'aurora', null],
      },
    });
    expect((await explain('maya'))[THEME]).toMatchObject({
      value: 'dark',
      because: 'the viewer is listed by key (rule 1 of 2)',
    });
    expect((await explain('jonas'))[THEME]).toMatchObject({
      value: 'light',
      because: 'no rule matched: the default variant (light)',
    });
    await app.patchFlag(THEME, { targeting: null });

    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    expect((await explain('theo'))[KILL_SWITCH]).toMatchObject({ value: false, reason: 'DISABLED' });
    await app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });

    const bad = await app.request('/api/explain?user=%3Cb%3E');
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe('user');
  });

  it("renders the page with each viewer's own flavour and theme", async () => {
    const theo = await app.request('/?user=theo');
    expect(theo.text).toContain('data-flavour="friends"');
    expect(theo.text).toContain('From your circles');
    expect(theo.text).toMatch(/<html lang="en" data-theme="light">/);
  });

  it('pushes a theme change to every open page, and a group rule only to that group', async () => {
    const [maya, jonas] = await Promise.all([
      app.socket({ cookie: 'viewer=maya' }),
      app.socket({ cookie: 'viewer=jonas' }),
    ]);
    await waitFor(() => maya.snapshots.length > 0 && jonas.snapshots.length > 0);
    const [mayaSeen, jonasSeen] = [record(maya, 'flag_update'), record(jonas, 'flag_update')];

    await app.patchFlag(THEME, { defaultVariant: 'aurora' });
    await waitFor(() => mayaSeen.length === 1 && jonasSeen.length === 1, 3000, 'the theme');
    expect(mayaSeen[0]).toMatchObject({ key: THEME, value: 'aurora' });
    expect(jonasSeen[0]).toMatchObject({ key: THEME, value: 'aurora' });

    // Staff (Maya) get the dark theme; Jonas is not staff and hears nothing.
    await app.patchFlag(THEME, { targeting: { if: [{ in: ['staff', { var: 'groups' }] }, 'dark', null] } });
    await waitFor(() => mayaSeen.length === 2, 3000, 'the staff rule');
    await app.delivered([jonas]);
    expect(mayaSeen[1]).toMatchObject({ key: THEME, value: 'dark' });
    expect(jonasSeen).toHaveLength(1);
    await app.patchFlag(THEME, { defaultVariant: 'light', targeting: null });
  });

  it("changes the server's log level live with the log-level flag, and back when it is disabled", async () => {
    expect(app.logger.level).toBe('silent');
    await app.patchFlag(LOG_LEVEL, { state: 'ENABLED', defaultVariant: 'debug' });
    await waitFor(() => app.logger.level === 'debug', 3000, 'debug');
    await app.patchFlag(LOG_LEVEL, { defaultVariant: 'warn' });
    await waitFor(() => app.logger.level === 'warn', 3000, 'warn');
    await app.patchFlag(LOG_LEVEL, { state: 'DISABLED' });
    await waitFor(() => app.logger.level === 'silent', 3000, 'back to LOG_LEVEL');
  });
});
