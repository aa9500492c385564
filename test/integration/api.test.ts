import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { TEST_TOKEN, startTestApp, type TestApp } from '../helpers/app.js';

/**
 * A PATCH whose X-Actor goes on the wire as the UTF-8 bytes of `note`, as `curl -H 'X-Actor: ...'`
 * sends what was typed in a UTF-8 terminal (fetch refuses such a header: Node's http writes a
 * header's characters as bytes, so the bytes go as Latin-1 characters). Resolves with the status.
 */
function patchWithRawUtf8Actor(app: TestApp, key: string, patch: unknown, note: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${app.url}/api/flags/${key}`, {
      method: 'PATCH',
      headers: {
        authorization: `Bearer ${TEST_TOKEN}`,
        'content-type': 'application/merge-patch+json',
        'x-actor': Buffer.from(note, 'utf8').toString('latin1'),
      },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    // A Buffer: with a string body, Node sends the headers in the body's encoding (UTF-8).
    req.end(Buffer.from(JSON.stringify(patch)));
  });
}

describe('the flags API', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ API_RATE_LIMIT_PER_MIN: '1000' });
  });
  afterAll(() => app.stop());

  it('lists the flags as { key, version, definition } in flagd format', async () => {
    const { status, body } = await app.request('/api/flags');
    expect(status).toBe(200);
    expect(body.flags).toContainEqual({
      key: KILL_SWITCH,
      version: expect.any(Number),
      definition: { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' },
    });
  });

  it('gets one flag with its version as the ETag, and 404s an unknown one', async () => {
    const one = await app.request(`/api/flags/${KILL_SWITCH}`);
    expect(one.status).toBe(200);
    expect(one.headers.get('etag')).toBe(`"${one.body.version}"`);
    expect(one.body.definition).not.toHaveProperty('version');
    const missing = await app.request('/api/flags/no-such-flag');
    expect(missing.status).toBe(404);
    expect(missing.body.message).toMatch(/no-such-flag/);
  });

  it('patches with a merge patch: 200, the new version and ETag; null removes a member', async () => {
    const before = (await app.request(`/api/flags/${KILL_SWITCH}`)).body;
    const targeted = await app.patchFlag(KILL_SWITCH, {
      targeting: { if: [{ in: ['beta', { var: 'groups' }] }, 'off', null] },
    });
    expect(targeted.status).toBe(200);
    expect(targeted.body.version).toBe(before.version + 1);
    expect(targeted.headers.get('etag')).toBe(`"${before.version + 1}"`);
    const removed = await app.patchFlag(KILL_SWITCH, { targeting: null }, { 'content-type': 'application/json' });
    expect(removed.status).toBe(200);
    expect(removed.body.definition).toEqual(before.definition);
  });

  it('needs a valid bearer token: 401 without one or with a wrong one, and never echoes it', async () => {
    const none = await fetch(`${app.url}/api/flags/${KILL_SWITCH}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: '{"state":"DISABLED"}',
    });
    expect(none.status).toBe(401);
    const wrong = await app.patchFlag(
      KILL_SWITCH,
      { state: 'DISABLED' },
      { authorization: 'Bearer not-the-token-at-all' },
    );
    expect(wrong.status).toBe(401);
    expect(wrong.text).not.toContain('not-the-token-at-all');
    expect((await app.request(`/api/flags/${KILL_SWITCH}`)).body.definition.state).toBe('ENABLED');
  });

  it('answers 415 for a body that is not JSON', async () => {
    const res = await app.patchFlag(KILL_SWITCH, 'state=DISABLED', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(res.status).toBe(415);
    expect(res.body.message).toMatch(/application\/merge-patch\+json/);
  });

  it.each([
    [{ state: 'OFF' }, 'state'],
    [{ defaultVariant: 'maybe' }, 'defaultVariant'],
    [{ variants: { on: 'yes' } }, 'variants.on'],
    [{ variants: { on: null, off: null } }, 'variants'],
    [{ targeting: 'always' }, 'targeting'],
    [{ targeting: { nonsense: [] } }, 'targeting'],
    [{ version: 9 }, 'version'],
    [{ colour: 'red' }, 'colour'],
  ])('answers 400 naming the field for %j', async (patch, field) => {
    const res = await app.patchFlag(KILL_SWITCH, patch);
    expect(res.status).toBe(400);
    expect(res.body.field).toBe(field);
    expect(res.body.message.startsWith(`${field}:`)).toBe(true);
  });

  it.each([
    ['"-1"', 412],
    ['"abc"', 412],
    ['W/"CURRENT"', 412], // If-Match compares strongly: a weak tag never matches
    ['"0", "CURRENT"', 200], // a list: any tag that names the current version
    ['"CURRENT"', 200],
    ['*', 200],
    ['CURRENT', 400], // not an entity-tag: no quotes
    ['"CURRENT', 400],
    ['"a"b"', 400],
  ])('If-Match %s: %i (RFC 9110: entity-tags are opaque)', async (header, status) => {
    const version = (await app.request(`/api/flags/${KILL_SWITCH}`)).body.version;
    const variant = `probe${version}`;
    const res = await app.patchFlag(
      KILL_SWITCH,
      { variants: { [variant]: false } },
      { 'if-match': header.replaceAll('CURRENT', String(version)) },
    );
    expect(res.status, JSON.stringify(res.body)).toBe(status);
    if (status === 412) expect(res.body).toMatchObject({ error: 'version_conflict', currentVersion: version });
    if (status === 400) expect(res.body.field).toBe('If-Match');
    if (status === 200) await app.patchFlag(KILL_SWITCH, { variants: { [variant]: null } });
  });

  it('answers 400 for malformed JSON and 412 for a stale If-Match', async () => {
    const malformed = await app.patchFlag(KILL_SWITCH, '{"state": ');
    expect(malformed.status).toBe(400);
    expect(malformed.body.message).toMatch(/not valid JSON/);
    const { version } = (await app.request(`/api/flags/${KILL_SWITCH}`)).body;
    const stale = await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' }, { 'if-match': `"${version - 1}"` });
    expect(stale.status).toBe(412);
    expect(stale.body.currentVersion).toBe(version);
    const fresh = await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' }, { 'if-match': `"${version}"` });
    expect(fresh.status).toBe(200);
    await app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
  });

  it("audits every write with who (the token's name; X-Actor a note beside it), from where and what changed", async () => {
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' }, { 'x-actor': 'Maya on call', 'x-change-source': 'cli' });
    const { body } = await app.request('/api/audit?limit=1');
    expect(body.entries[0]).toMatchObject({
      key: KILL_SWITCH,
      summary: 'killed (disabled)',
      actor: { source: 'cli', name: 'admin', note: 'Maya on call', address: expect.stringContaining('127.0.0.1') },
      before: { state: 'ENABLED' },
      after: { state: 'DISABLED' },
    });
    await app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
  });

  it('reads an X-Actor beyond ASCII as curl sends it (raw UTF-8) and as the admin page does (RFC 8187 ext-value)', async () => {
    let killed = false;
    /** Flips the kill switch (so that every write is a change, and audited) and gives the note the audit kept. */
    const noteOf = async (send: (patch: unknown) => Promise<number>) => {
      killed = !killed;
      expect(await send({ state: killed ? 'DISABLED' : 'ENABLED' })).toBe(200);
      return (await app.request('/api/audit?limit=1')).body.entries[0].actor.note as string | undefined;
    };
    const raw = (note: string) => noteOf((patch) => patchWithRawUtf8Actor(app, KILL_SWITCH, patch, note));
    const header = (value: string) =>
      noteOf(async (patch) => (await app.patchFlag(KILL_SWITCH, patch, { 'x-actor': value })).status);

    expect(await raw('Łukasz — on call')).toBe('Łukasz — on call');
    expect(await raw('Zoë 🚒 Müller')).toBe('Zoë 🚒 Müller');
    expect(await header("UTF-8''%C5%81ukasz%20%E2%80%94%20on%20call")).toBe('Łukasz — on call');
    expect(await header("utf-8'pl'%C5%81ukasz")).toBe('Łukasz');
    // Latin-1 bytes that are not UTF-8 (a client sending ISO-8859-1): read as Latin-1, as before.
    expect(await header('Caf\u00e9 night shift')).toBe('Café night shift');
    // Percent-encoding that is not UTF-8, or not an ext-value at all: kept as sent.
    expect(await header("UTF-8''%C5")).toBe("UTF-8''%C5");
    expect(await header('50%25 rollout')).toBe('50%25 rollout');
    // Control characters go after decoding too (no forged lines, no terminal escapes in the audit).
    expect(await header("UTF-8''Maya%0A%1B%5B31m%C2%85on%20call%7F")).toBe('Maya[31mon call');
    expect(await raw('Maya\u0085 on call')).toBe('Maya on call');
    // 80 characters, counted after decoding, never half of one: not half an emoji, nor half a grapheme.
    expect(await raw('Ł'.repeat(100))).toBe('Ł'.repeat(80));
    expect(await header(`UTF-8''a${'%F0%9F%8E%89'.repeat(100)}`)).toBe(`a${'🎉'.repeat(79)}`);
    expect(await raw(`${'x'.repeat(79)}👩‍💻 done`)).toBe('x'.repeat(79));
    expect(await raw(`${'x'.repeat(78)}🇵🇱 done`)).toBe(`${'x'.repeat(78)}🇵🇱`);
    if (killed) await app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
  });
});

describe('the API rate limit', () => {
  let app: TestApp;
  beforeAll(async () => {
    // Behind a proxy on this machine: each X-Forwarded-For address is a client of its own.
    app = await startTestApp({ API_RATE_LIMIT_PER_MIN: '3', TRUST_PROXY: 'loopback' });
  });
  afterAll(() => app.stop());

  it('answers 429 with Retry-After past the limit of writes, and still serves reads', async () => {
    const responses = [];
    for (let i = 0; i < 4; i++)
      responses.push(await app.patchFlag(KILL_SWITCH, { state: i % 2 ? 'ENABLED' : 'DISABLED' }));
    expect(responses.map((response) => response.status)).toEqual([200, 200, 200, 429]);
    // IETF draft 7's headers, on every write: the policy, and what is left of it.
    expect(responses[0]!.headers.get('ratelimit-policy')).toBe('3;w=60');
    expect(responses[0]!.headers.get('ratelimit')).toMatch(/^limit=3, remaining=2, reset=(60|59)$/);
    const limited = await app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.headers.get('ratelimit')).toMatch(/^limit=3, remaining=0, reset=\d+$/);
    expect(limited.body.message).toMatch(/Too many writes/);
    expect((await app.request('/api/flags')).status).toBe(200);
  });

  it('counts an IPv6 client by its /56: a new address in the same block is the same client', async () => {
    const from = (address: string) => ({ 'x-forwarded-for': address });
    const statuses = [];
    for (const address of ['2001:db8:7:100::1', '2001:db8:7:1ff::2', '2001:db8:7:142:a:b:c:d', '2001:db8:7:100::9'])
      statuses.push((await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' }, from(address))).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    // The next /56 is another client, and so is an IPv4 address.
    expect((await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' }, from('2001:db8:7:200::1'))).status).toBe(200);
    expect((await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' }, from('198.51.100.7'))).status).toBe(200);
  });
});

describe('flagd format both ways', () => {
  let app: TestApp;
  let dir: string;
  beforeAll(async () => {
    // A file written by hand as flagd reads it: flag-set metadata, a shared rule used with $ref,
    // flag metadata, and a flag with no default variant (the code's default).
    dir = await mkdtemp(path.join(tmpdir(), 'killswitch-flagd-'));
    const document = {
      $schema: 'https://flagd.dev/schema/v0/flags.json',
      metadata: { owner: 'growth', version: '7' },
      $evaluators: { beta: { in: ['beta', { var: 'groups' }] } },
      flags: {
        [KILL_SWITCH]: {
          state: 'ENABLED',
          variants: { on: true, off: false },
          defaultVariant: 'on',
          metadata: { ticket: 'OPS-12' },
        },
        'recommendations-flavour': {
          state: 'ENABLED',
          variants: { classic: 'classic', trending: 'trending', friends: 'friends' },
          defaultVariant: null,
          targeting: { if: [{ $ref: 'beta' }, 'friends', 'classic'] },
        },
      },
    };
    await writeFile(path.join(dir, 'flags.json'), JSON.stringify(document, null, 2));
    app = await startTestApp({}, { dir });
  });
  afterAll(() => app.stop());

  it('adopts every member flagd accepts, evaluates the shared rule, and keeps what it does not change across its writes', async () => {
    const flavour = await app.request('/api/explain?user=theo'); // theo is in beta
    expect(flavour.body.flags.find((f: any) => f.key === 'recommendations-flavour')).toMatchObject({
      value: 'friends',
      reason: 'TARGETING_MATCH',
    });
    expect((await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' })).status).toBe(200);
    const written = JSON.parse(await readFile(app.flagsFile, 'utf8'));
    expect(written.metadata).toEqual({ owner: 'growth', version: '7' });
    expect(written.$evaluators).toEqual({ beta: { in: ['beta', { var: 'groups' }] } });
    expect(written.flags[KILL_SWITCH]).toEqual({
      state: 'DISABLED',
      variants: { on: true, off: false },
      defaultVariant: 'on',
      metadata: { ticket: 'OPS-12' },
    });
    expect(written.flags['recommendations-flavour'].defaultVariant).toBeNull();
    await app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
  });

  it('refuses a rollout flagd would read differently (weights that are not whole) or that names a variant the flag lacks: 400 naming the field', async () => {
    const halves = await app.patchFlag('recommendations-flavour', {
      targeting: {
        fractional: [
          ['classic', 50.5],
          ['trending', 49.5],
        ],
      },
    });
    expect(halves.status).toBe(400);
    expect(halves.body).toMatchObject({ field: 'targeting.fractional.0.1' });
    const ghost = await app.patchFlag('recommendations-flavour', {
      targeting: {
        fractional: [
          ['classic', 50],
          ['viral', 50],
        ],
      },
    });
    expect(ghost.status).toBe(400);
    expect(ghost.body.field).toBe('targeting.fractional.1.0');
    expect(ghost.body.message).toMatch(/"viral", which the flag does not have/);
  });
});
