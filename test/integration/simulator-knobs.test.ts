import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { networkInterfaces } from 'node:os';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KNOBS_BODY_LIMIT } from '../../server/simulator/knobs.js';
import { startSimulator, type Simulator, type SimulatorKnobs } from '../../server/simulator/simulator.js';
import { runScript } from '../../testing/process.js';

const DEFAULTS: SimulatorKnobs = { latencyMs: 120, errorRate: 0, mode: 'normal' };

/** POSTs to the knobs as any HTTP client may: the status, and the knobs the simulator then reports at GET /_sim. */
async function postKnobs(origin: string, body: string, headers: Record<string, string>) {
  const response = await fetch(`${origin}/_sim/knobs`, { method: 'POST', headers, body });
  await response.body?.cancel();
  const after = (await (await fetch(`${origin}/_sim`)).json()) as { knobs: unknown };
  return { status: response.status, knobs: after.knobs };
}

/**
 * POSTs `megabytes` of JSON-looking bytes to the knobs, one reused 64 KB chunk at a time (so this
 * side's memory stays flat), chunked or with a Content-Length; resolves with the status of the
 * answer, which may come while the body is still being sent.
 */
function postHugeBody(origin: string, megabytes: number, withLength: boolean): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, ' ');
  const chunks = megabytes * 16;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (withLength) headers['content-length'] = String(chunks * chunk.length);
    const req = request(`${origin}/_sim/knobs`, { method: 'POST', headers });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      res.resume();
      resolve(res.statusCode!);
      req.destroy(); // nothing more to send to a server that has answered
    });
    // Once answered, the server may close while this side still writes: that is its refusal, not a failure.
    req.on('error', (error) => answered || reject(error));
    let sent = 0;
    const write = () => {
      while (sent < chunks && !answered) {
        sent++;
        if (!req.write(chunk)) return void req.once('drain', write);
      }
      if (!answered) req.end();
    };
    write();
  });
}

/** The peak resident memory of a process, in bytes (Linux: VmHWM in /proc/PID/status). */
async function peakMemoryOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)![1]) * 1024;
}

describe('the simulator knobs answer only to JSON from this machine, never to another site', () => {
  let sim: Simulator;
  beforeEach(async () => {
    sim = await startSimulator({ port: 0, knobs: DEFAULTS });
  });
  afterEach(() => sim.close());

  it('takes JSON from a loopback client without an Origin, or from its own origin', async () => {
    expect(await postKnobs(sim.origin, '{"mode":"fail"}', { 'content-type': 'application/json' })).toEqual({
      status: 200,
      knobs: { ...DEFAULTS, mode: 'fail' },
    });
    const ownPage = {
      'content-type': 'application/json; charset=utf-8',
      origin: sim.origin,
      'sec-fetch-site': 'same-origin',
    };
    expect(await postKnobs(sim.origin, '{"mode":"slow","latencyMs":40}', ownPage)).toEqual({
      status: 200,
      knobs: { ...DEFAULTS, mode: 'slow', latencyMs: 40 },
    });
    // A request the person typed (the address bar, a bookmark): Sec-Fetch-Site none.
    expect(
      (
        await postKnobs(sim.origin, '{"mode":"normal","latencyMs":120}', {
          'content-type': 'application/json',
          'sec-fetch-site': 'none',
        })
      ).status,
    ).toBe(200);
    expect(sim.knobs()).toEqual(DEFAULTS);
  });

  it('refuses what a form or a no-cors fetch can send (text/plain, a form, no type) with 415, knobs unchanged', async () => {
    // `{"mode":"hang","x":"` `="}` is how a text/plain form smuggles valid JSON.
    for (const type of [
      'text/plain',
      'text/plain;charset=UTF-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
    ]) {
      expect(await postKnobs(sim.origin, '{"mode":"hang","x":"="}', { 'content-type': type }), type).toEqual({
        status: 415,
        knobs: DEFAULTS,
      });
    }
    const untyped = await fetch(`${sim.origin}/_sim/knobs`, { method: 'PUT', body: new Blob(['{"mode":"hang"}']) });
    expect(untyped.status).toBe(415);
    expect(sim.knobs()).toEqual(DEFAULTS);
  });

  it('refuses another site: an Origin not its own, or Sec-Fetch-Site not same-origin/none (403), even with JSON', async () => {
    const json = { 'content-type': 'application/json' };
    for (const headers of <Record<string, string>[]>[
      { origin: 'https://evil.example' },
      { origin: 'null' }, // a sandboxed frame, a data: URL
      { origin: sim.origin.replace('127.0.0.1', 'localhost') },
      { origin: `${sim.origin}.evil.example` },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' }, // the app's own pages, on another port of this host
      { origin: sim.origin, 'sec-fetch-site': 'cross-site' },
    ]) {
      expect(await postKnobs(sim.origin, '{"mode":"hang"}', { ...json, ...headers }), JSON.stringify(headers)).toEqual({
        status: 403,
        knobs: DEFAULTS,
      });
    }
  });

  it('refuses a body over the limit with 413, chunked or announced', async () => {
    const big = JSON.stringify({ mode: 'hang', padding: 'x'.repeat(KNOBS_BODY_LIMIT) });
    expect(await postKnobs(sim.origin, big, { 'content-type': 'application/json' })).toEqual({
      status: 413,
      knobs: DEFAULTS,
    });
    expect(await postHugeBody(sim.origin, 8, false)).toBe(413);
    expect(await postHugeBody(sim.origin, 8, true)).toBe(413);
    // The simulator still answers afterwards.
    expect((await postKnobs(sim.origin, '{"errorRate":0.5}', { 'content-type': 'application/json' })).status).toBe(200);
  });

  it('takes the three knobs only, each of its type', async () => {
    const json = { 'content-type': 'application/json' };
    for (const body of [
      '[]',
      'null',
      '"hang"',
      '{"latencyMs":"5"}',
      '{"errorRate":2}',
      '{"mode":"explode"}',
      '{"mode":"hang"',
    ]) {
      expect(await postKnobs(sim.origin, body, json), body).toEqual({ status: 400, knobs: DEFAULTS });
    }
    expect(await postKnobs(sim.origin, '{"mode":"garbage","extra":1,"__proto__":{"x":1}}', json)).toEqual({
      status: 200,
      knobs: { ...DEFAULTS, mode: 'garbage' },
    });
  });
});

describe('the simulator bound to every address', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, host: '0.0.0.0' });
  });
  afterAll(() => sim.close());

  it('serves anyone its API, but its knobs only to loopback peers (403 from another address)', async () => {
    const port = new URL(sim.origin).port;
    // This machine's own network address: a peer that is not loopback, as another host would be.
    const external = Object.values(networkInterfaces())
      .flat()
      .find((entry) => entry && entry.family === 'IPv4' && !entry.internal)?.address;
    if (!external) throw new Error('this test needs a network interface other than loopback (an IPv4 address)');
    const outside = `http://${external}:${port}`;
    expect((await fetch(`${outside}/_sim`)).status).toBe(200);
    expect((await fetch(`${outside}/v1/avatars/maya.svg`)).status).toBe(200);
    expect(await postKnobs(outside, '{"mode":"hang"}', { 'content-type': 'application/json' })).toMatchObject({
      status: 403,
      knobs: { mode: 'normal' },
    });
    expect(
      (await postKnobs(`http://127.0.0.1:${port}`, '{"mode":"fail"}', { 'content-type': 'application/json' })).status,
    ).toBe(200);
    expect(sim.knobs().mode).toBe('fail');
  });
});

describe('`npm run simulator`, the simulator as its own process', { timeout: 60_000 }, () => {
  it('stops reading a huge knobs body at the limit: 64 MB sent, 413, and its memory does not grow by it', async () => {
    const child = runScript('server/simulator/main.ts', [], { SIMULATOR_PORT: '0', LOG_LEVEL: 'info' });
    try {
      let output = '';
      const origin = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString();
          const avatars = /"avatars":"([^"]+)"/.exec(output)?.[1];
          if (avatars) resolve(new URL(avatars).origin);
        });
        child.once('exit', (code) => reject(new Error(`the simulator exited with ${code}: ${output}`)));
      });
      // Warm: the knobs' own code has run once before the peak is read.
      expect((await postKnobs(origin, '{"mode":"normal"}', { 'content-type': 'application/json' })).status).toBe(200);
      const before = await peakMemoryOf(child.pid!);
      const megabytes = 64;
      const chunked = await postHugeBody(origin, megabytes, false);
      const announced = await postHugeBody(origin, megabytes, true);
      const grown = (await peakMemoryOf(child.pid!)) - before;
      // Half of one body: what is read and dropped is garbage the collector may not have taken yet
      // on a loaded machine (18 MB once, in a full suite on two busy cores), never the bodies kept.
      expect(grown, `peak memory grew by ${Math.round(grown / 1024 / 1024)} MB`).toBeLessThan(
        (megabytes / 2) * 1024 * 1024,
      );
      expect([chunked, announced]).toEqual([413, 413]);
      expect((await postKnobs(origin, '{"mode":"fail"}', { 'content-type': 'application/json' })).knobs).toMatchObject({
        mode: 'fail',
      });
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
      }
    }
  });
});
