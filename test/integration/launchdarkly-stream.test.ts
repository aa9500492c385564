import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH, RECS_FLAVOUR, THEME } from '../../server/flags/catalog.js';
import { nextEvent, startTestApp, waitFor, type TestApp } from '../helpers/app.js';

const SDK_KEY = 'sdk-stream-test-key';

/** A LaunchDarkly flag as the streaming API sends it: `on`, variations, fallthrough and off. */
function ldFlag(key: string, variations: unknown[], serve: number, version: number, on = true) {
  return {
    key,
    version,
    on,
    variations,
    fallthrough: { variation: serve },
    offVariation: 0,
    targets: [],
    contextTargets: [],
    rules: [],
    prerequisites: [],
    salt: key,
    trackEvents: false,
    trackEventsFallthrough: false,
  };
}

/**
 * A double of LaunchDarkly's streaming endpoint (what a Relay Proxy serves): `GET /all` is a
 * server-sent event stream that starts with `put` (every flag) and then sends `patch` for each
 * change; events (`POST /bulk`, `/diagnostic`) are accepted. It records who connected with which key.
 */
async function startStreamDouble() {
  const flags: Record<string, ReturnType<typeof ldFlag>> = {
    [KILL_SWITCH]: ldFlag(KILL_SWITCH, [false, true], 1, 1),
    [RECS_FLAVOUR]: ldFlag(RECS_FLAVOUR, ['classic', 'trending', 'friends'], 0, 1),
    [THEME]: ldFlag(THEME, ['light', 'dark', 'aurora'], 0, 1),
  };
  const streams = new Set<ServerResponse>();
  const keys: string[] = [];
  const send = (res: ServerResponse, event: string, data: unknown) =>
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'GET' && req.url?.startsWith('/all')) {
      keys.push(String(req.headers.authorization));
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      send(res, 'put', { path: '/', data: { flags, segments: {} } });
      streams.add(res);
      res.on('close', () => streams.delete(res));
      return;
    }
    req.resume();
    res.writeHead(req.method === 'POST' ? 202 : 404).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    keys,
    streams: () => streams.size,
    /** A change in "LaunchDarkly": kept for the next `put`, and sent as `patch` to every open stream. */
    change(key: string, serve: number) {
      const flag = { ...flags[key]!, version: flags[key]!.version + 1, fallthrough: { variation: serve } };
      flags[key] = flag;
      for (const res of streams) send(res, 'patch', { path: `/flags/${key}`, data: flag });
    },
    /** Every stream cut, as a network drop or a Relay restart would. */
    drop: () => {
      for (const res of streams) res.destroy();
    },
    close: () => {
      for (const res of streams) res.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('LaunchDarkly over the network: the real SDK against a local stream (a Relay Proxy double)', () => {
  let double: Awaited<ReturnType<typeof startStreamDouble>>;
  let app: TestApp;
  beforeAll(async () => {
    double = await startStreamDouble();
    app = await startTestApp({
      LAUNCHDARKLY_SDK_KEY: SDK_KEY,
      LAUNCHDARKLY_BASE_URI: double.url,
      LAUNCHDARKLY_STREAM_URI: double.url,
      LAUNCHDARKLY_EVENTS_URI: double.url,
    });
  });
  afterAll(async () => {
    await app?.stop();
    await double?.close();
  });

  it('streams from the configured endpoint: a flip down the stream reaches the browser; a dropped stream keeps the last values; a reconnect converges', async () => {
    expect(double.keys[0]).toBe(SDK_KEY);
    expect(await app.request('/readyz')).toMatchObject({ status: 200 });
    expect((await app.request('/?user=maya')).text).toContain('data-show-avatars="true"');
    const socket = await app.socket({ cookie: 'viewer=maya' });
    expect(socket.snapshots[0]![KILL_SWITCH]).toBe(true);

    // A kill in LaunchDarkly, down the stream.
    let update = nextEvent(socket, 'flag_update');
    double.change(KILL_SWITCH, 0);
    expect(await update).toMatchObject({ key: KILL_SWITCH, value: false });

    // The stream drops, and while it is down LaunchDarkly restores: the last values keep serving.
    double.drop();
    await waitFor(() => double.streams() === 0, 2000, 'the stream to drop');
    double.change(KILL_SWITCH, 1);
    expect((await app.request('/?user=maya')).text).toContain('data-show-avatars="false"');
    expect((await app.request('/readyz')).status).toBe(200);

    // The SDK reconnects by itself (about a second of backoff); the new `put` converges the browser.
    update = nextEvent(socket, 'flag_update', 15_000);
    expect(await update).toMatchObject({ key: KILL_SWITCH, value: true });
    expect(double.keys.length).toBeGreaterThanOrEqual(2);
    expect((await app.request('/?user=maya')).text).toContain('data-show-avatars="true"');
  });
});
