import { Router, type Request, type Response } from 'express';
import { REFETCH_AFTER_HEADER, REFETCH_TURN_HEADER } from '../../protocol/wire.js';
import { BadRequestError } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import { FALLBACK_RECOMMENDATIONS } from './content.js';
import type { FeedBuilder } from './feed.js';
import {
  isValidViewerKey,
  newAnonymousKey,
  VIEWER_COOKIE,
  viewerFor,
  viewerKeyFromCookieHeader,
  type Viewer,
} from './viewer.js';

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
      throw new BadRequestError(
        'user must be 1-64 letters, digits, "_", ".", "@" or "-", starting with a letter or digit',
        { field: 'user' },
      );
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

/** A turn brought back by the page (`?turn=`): opaque, short; anything else is ignored. */
function turnOf(req: Request): string | undefined {
  const turn = req.query.turn;
  return typeof turn === 'string' && turn.length <= 64 ? turn : undefined;
}

export function createFeedRoutes(deps: { buildFeed: FeedBuilder; metrics: Metrics }): Router {
  const router = Router();

  router.get('/', async (req, res) => {
    const viewer = resolveViewer(req, res);
    const feed = await deps.buildFeed(viewer, { foreground: true });
    deps.metrics.pageViews.inc({ kind: 'page', live: String(feed.showAvatars) });
    res.set('Cache-Control', 'no-store').render('index', { feed, fallbackRecommendations: FALLBACK_RECOMMENDATIONS });
  });

  /**
   * The live region alone, rendered by the same partial: what a page swaps in when its live
   * content changes (a restore, a new recommendations flavour). When the third party is at
   * capacity the answer is a 503 with a turn (`Refetch-Turn`, `Refetch-After-Ms`, and
   * `Retry-After`), rendered and sent in microseconds: the page shows that it is catching up and
   * comes back on its turn with `?turn=`. A fragment that came out partly short carries a turn too.
   */
  router.get('/fragments/feed', async (req, res) => {
    const viewer = resolveViewer(req, res);
    const feed = await deps.buildFeed(viewer, { turn: turnOf(req) });
    res.set('Cache-Control', 'no-store');
    if (feed.turn)
      res.set({ [REFETCH_TURN_HEADER]: feed.turn.token, [REFETCH_AFTER_HEADER]: String(feed.turn.waitMs) });
    if (feed.deferred) {
      deps.metrics.pageViews.inc({ kind: 'deferred', live: 'true' });
      res
        .status(503)
        .set('Retry-After', String(Math.max(1, Math.ceil(feed.turn!.waitMs / 1000))))
        .json({
          error: 'catching_up',
          message: 'The third party is at capacity: come back on your turn.',
          retryAfterMs: feed.turn!.waitMs,
        });
      return;
    }
    deps.metrics.pageViews.inc({ kind: 'fragment', live: String(feed.showAvatars) });
    res.render('partials/live', { feed });
  });

  return router;
}
