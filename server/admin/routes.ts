import express, { Router, type Request, type Response } from 'express';
import {
  blockedText,
  csrfMatches,
  fromOwnOrigin,
  ownOriginOf,
  sessionIdFrom,
  TOKEN_REFUSED,
  type Access,
} from '../access/auth.js';
import { SESSION_COOKIE, SESSION_TTL_MS } from '../access/sessions.js';
import { ForbiddenError } from '../errors.js';
import { THEMES } from '../../protocol/flags.js';
import { flagCatalog, KILL_SWITCH } from '../flags/catalog.js';
import { people } from '../feed/content.js';
import type { FlagsProvider } from '../flags/provider.js';
import type { Readiness } from '../flags/readiness.js';
import type { FlagRepository } from '../flags/repository.js';
import type { AdminState } from '../../protocol/wire.js';
import type { Ramp } from '../../protocol/ramp.js';
import type { Metrics } from '../observability/metrics.js';
import type { UpstreamClient } from '../upstream/client.js';

/** What the launch-control page shows; rendered at first, then pushed live to the "admin" room. */
export function createAdminState({
  provider,
  repository,
  readiness,
  upstream = [],
  metrics,
  theme = async () => THEMES[0]!,
  ramp = () => undefined,
}: {
  provider: FlagsProvider;
  /** Whether the flags can be trusted, and why not (see flags/readiness.ts). */
  readiness: () => Readiness;
  /** Absent when the flags are read-only here (LaunchDarkly). */
  repository: FlagRepository | undefined;
  upstream?: readonly UpstreamClient[];
  metrics?: Metrics;
  /** The `theme` flag as the launch-control page gets it: the pages share one look. */
  theme?: () => Promise<string>;
  /** The guarded restore running, or the last one. */
  ramp?: () => Ramp | undefined;
}) {
  /** Calls made by service and outcome, and calls skipped by reason, from the Prometheus counters. */
  const counts = async () => {
    const made = (await metrics?.upstreamRequests.get())?.values ?? [];
    const skipped = (await metrics?.upstreamSkipped.get())?.values ?? [];
    return (service: string) => ({
      calls: Object.fromEntries(
        made.filter((v) => v.labels.service === service).map((v) => [String(v.labels.outcome), v.value]),
      ),
      skipped: Object.fromEntries(
        skipped.filter((v) => v.labels.service === service).map((v) => [String(v.labels.reason), v.value]),
      ),
    });
  };
  return async (browsers: number): Promise<AdminState> => {
    const [of, look] = await Promise.all([counts(), theme()]);
    const current = ramp();
    return {
      source: { kind: provider.kind, writable: repository !== undefined, ...readiness() },
      // A read-only source (LaunchDarkly) has no definitions to show: the app's flags, by key.
      flags: (
        repository?.list() ??
        Object.keys(flagCatalog).map((key) => ({ key, version: provider.versionOf(key), definition: null }))
      ).map((record) => {
        const problem = provider.flagProblems().get(record.key);
        return { ...record, description: flagCatalog[record.key]?.description ?? '', ...(problem ? { problem } : {}) };
      }),
      audit: repository?.audit.recent(30) ?? [],
      browsers,
      upstream: upstream.map((client) => ({
        service: client.service,
        breaker: client.breakerState(),
        breakerSince: new Date(client.breakerSince()).toISOString(),
        timeoutMs: client.timeoutMs,
        budget: client.budgetUsage(),
        ...of(client.service),
      })),
      theme: THEMES.includes(look) ? look : THEMES[0]!,
      ...(current ? { ramp: current } : {}),
    };
  };
}

/**
 * GET /admin: the launch-control page for a signed-in session, else the sign-in page (which shows
 * nothing of the flags or the audit). POST /admin/sign-in takes a token, checks it at once, and
 * starts a session: an HttpOnly, SameSite=Strict cookie, so no script ever holds the credential.
 * POST /admin/sign-out ends it. Both forms must come from this origin (and sign-out carries the
 * session's CSRF token); failed sign-ins count against the address like any failed authentication,
 * and successful ones against its own limit of sign-ins.
 */
export function createAdminRoutes(deps: { adminState: () => Promise<AdminState>; access: Access }): Router {
  const router = Router();
  const { access } = deps;
  const form = express.urlencoded({ extended: false, limit: '4kb' });
  const cookieOptions = (req: Request) => ({
    httpOnly: true,
    sameSite: 'strict' as const,
    secure: req.secure,
    path: '/',
  });
  const signIn = async (res: Response, status: number, message: string) =>
    res
      .status(status)
      .set('Cache-Control', 'no-store')
      .render('admin-sign-in', { message, theme: (await deps.adminState()).theme });

  router.get('/admin', async (req, res) => {
    const session = await access.liveSession(sessionIdFrom(req.headers));
    if (!session) return void (await signIn(res, 200, ''));
    res.set('Cache-Control', 'no-store').render('admin', {
      state: await deps.adminState(),
      killSwitch: KILL_SWITCH,
      people,
      principal: session.principal,
      csrf: session.csrf,
    });
  });

  router.post('/admin/sign-in', form, async (req, res) => {
    if (!fromOwnOrigin(req.headers, ownOriginOf(req)))
      throw new ForbiddenError("Sign in from this server's own /admin page.", 'cross_site');
    const address = req.ip ?? 'unknown';
    const { token: field } = (req.body ?? {}) as { token?: unknown };
    const token = typeof field === 'string' ? field.trim() : '';
    const check = await access.checkToken(address, token || undefined);
    if (check.outcome === 'blocked')
      return void (await signIn(
        res.set('Retry-After', String(check.retryAfterSeconds)),
        429,
        blockedText(check.retryAfterSeconds),
      ));
    if (check.outcome === 'none') return void (await signIn(res, 400, 'Paste a token to sign in.'));
    if (check.outcome === 'wrong') return void (await signIn(res, 401, TOKEN_REFUSED));
    const { principal } = check;
    const signInWait = await access.signIns.take(address);
    if (signInWait > 0)
      return void (await signIn(
        res.set('Retry-After', String(signInWait)),
        429,
        `Too many sign-ins from this address. Try again in ${signInWait} s.`,
      ));
    const { id } = await access.sessions.create(principal);
    res.cookie(SESSION_COOKIE, id, { ...cookieOptions(req), maxAge: SESSION_TTL_MS });
    res.redirect(303, '/admin');
  });

  router.post('/admin/sign-out', form, async (req, res) => {
    const id = sessionIdFrom(req.headers);
    const session = await access.liveSession(id);
    if (session) {
      const { csrf: field } = (req.body ?? {}) as { csrf?: unknown };
      const csrf = typeof field === 'string' ? field : undefined;
      if (!fromOwnOrigin(req.headers, ownOriginOf(req)) || !csrfMatches(session, csrf))
        throw new ForbiddenError("Sign out from this server's own /admin page.", 'cross_site');
    }
    await access.sessions.end(id);
    res.clearCookie(SESSION_COOKIE, cookieOptions(req));
    res.redirect(303, '/admin');
  });
  return router;
}
