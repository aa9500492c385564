import { Router, type Request, type Response } from 'express';
import { BadRequestError } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import type { FeedBuilder } from './feed.js';
import { isValidViewerKey, newAnonymousKey, VIEWER_COOKIE, viewerFor, viewerKeyFromCookieHeader, type Viewer } from './viewer.js';

const ONE_YEAR_MS = 365 * 24 * 3600 * 1000;

/**
 * The viewer of this request: `?user=` when given (and then kept in the cookie), else the
 * cookie, else a new anonymous key (kept in the cookie too).
 */
function resolveViewer(req: Request, res: Response): Viewer {
  const requested = req.query.user;
  let key: string | undefined;
  if (requested !== undefined) {
    if (typeof requested !== 'string' || !isValidViewerKey(requested)) {
      throw new BadRequestError('user must be 1-64 letters, digits, "_", ".", "@" or "-", starting with a letter or digit', { field: 'user' });
    }
    key = requested;
  }
  const fromCookie = viewerKeyFromCookieHeader(req.headers.cookie);
  key ??= fromCookie ?? newAnonymousKey();
  if (key !== fromCookie) {
    res.cookie(VIEWER_COOKIE, key, { httpOnly: true, sameSite: 'lax', maxAge: ONE_YEAR_MS, path: '/' });
  }
  return viewerFor(key);
}

export function createFeedRoutes(deps: { buildFeed: FeedBuilder; metrics: Metrics; restoreJitterMs: number }): Router {
  const router = Router();

  router.get('/', async (req, res) => {
    const viewer = resolveViewer(req, res);
    const feed = await deps.buildFeed(viewer);
    deps.metrics.pageViews.inc({ kind: 'page', live: String(feed.showAvatars) });
    res.set('Cache-Control', 'no-store').render('index', { feed, restoreJitterMs: deps.restoreJitterMs });
  });

  /** The live region alone, rendered by the same partial: what a browser swaps in on a restore. */
  router.get('/fragments/feed', async (req, res) => {
    const viewer = resolveViewer(req, res);
    const feed = await deps.buildFeed(viewer);
    deps.metrics.pageViews.inc({ kind: 'fragment', live: String(feed.showAvatars) });
    res.set('Cache-Control', 'no-store').render('partials/live', { feed });
  });

  return router;
}
