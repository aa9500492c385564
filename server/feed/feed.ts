import type { Client } from '@openfeature/server-sdk';
import { THEMES } from '../../protocol/flags.js';
import { flagCatalog, KILL_SWITCH, RECS_FLAVOUR, THEME } from '../flags/catalog.js';
import type { Metrics } from '../observability/metrics.js';
import { FALLBACK_AVATAR, type Avatar, type AvatarService } from '../upstream/avatars.js';
import type { CallPlan, Pacer, SharedCall, Turn } from '../upstream/pacing.js';
import type { RecommendationService, Recommendations } from '../upstream/recommendations.js';
import { FALLBACK_RECOMMENDATIONS, findPerson, people, posts, type Person, type Post } from './content.js';
import { evaluationContext, type Viewer } from './viewer.js';

export interface FeedView {
  viewer: Viewer & { avatar: Avatar };
  /** The kill switch as this viewer sees it: true = third-party content on. */
  showAvatars: boolean;
  posts: (Omit<Post, 'author'> & { author: Person; avatar: Avatar })[];
  recommendations: Recommendations;
  /** Which recommendations were asked for (classic, trending, friends). */
  flavour: string;
  theme: string;
  people: readonly Person[];
  /**
   * Live, but some third-party content could not be had yet because we are at the third party's
   * capacity (a restore, a burst): when to ask again. The page shows that it is catching up.
   */
  turn: Turn | undefined;
  /** The render was deferred whole to its turn: nothing was asked of the third party. */
  deferred: boolean;
}

export { THEMES };

const FALLBACK: Avatar = { url: FALLBACK_AVATAR, live: false };

export interface FeedDeps {
  flags: Client;
  avatars: AvatarService;
  recommendations: RecommendationService;
  pacer: Pacer;
  /** Told of each live render: this process's own pace (the pacer's `renderer`). */
  renderCost?: { rendered(): void };
  metrics: Metrics;
}

/**
 * `foreground`: someone is waiting for this render (a page load), as opposed to a page
 * refreshing its live region in the background. `turn`: the turn the page brings back.
 */
export interface RenderOptions {
  turn?: string | undefined;
  foreground?: boolean;
}

/** The third-party content of a live render: what it has, and when to come back for the rest. */
interface LiveContent {
  avatars: Map<string, Avatar>;
  recommendations: Recommendations;
  turn: Turn | undefined;
  deferred: boolean;
}

const avatarCall = (personKey: string): SharedCall => ({ service: 'avatars', key: personKey });

/** Nothing live yet: fallbacks, no turn (a factory: the avatars map is filled in). */
const noLiveContent = (): LiveContent => ({
  avatars: new Map(),
  recommendations: FALLBACK_RECOMMENDATIONS,
  turn: undefined,
  deferred: false,
});

/**
 * What is cached is used as it is, and the calls the rest needs are asked of the pacer: admitted,
 * they run concurrently (the page waits at most about one upstream timeout, and any failure is a
 * fallback, never an error); deferred, the page is rendered at once with fallbacks and a turn to
 * come back for the rest.
 */
async function liveContent(
  deps: FeedDeps,
  viewer: Viewer,
  flavour: string,
  options: RenderOptions,
): Promise<LiveContent> {
  const content = noLiveContent();
  // The viewer's own avatar and the posts' authors'.
  const shown = [...new Set([viewer.key, ...posts.map((post) => post.author)])];
  const missing = shown.filter((key) => {
    const cached = deps.avatars.cached(key);
    if (cached) content.avatars.set(key, cached);
    return !cached;
  });
  const cachedRecs = deps.recommendations.cached(viewer, flavour);
  if (cachedRecs) content.recommendations = cachedRecs;
  if (missing.length === 0 && cachedRecs) return content;

  // A render that calls the third party is paced by it, and by this process's own loop. An avatar
  // is a call any page may need (the authors' are on every page): one another page is fetching
  // now, or has a turn booked to fetch, is not booked twice.
  const avatarCalls = missing.filter((key) => !deps.avatars.fetching(key)).map(avatarCall);
  const plan: CallPlan = { recommendations: cachedRecs ? 0 : 1, renderer: 1 };
  const foreground = options.foreground ?? false;
  const admission = deps.pacer.admit(plan, viewer.key, { token: options.turn, foreground, shared: avatarCalls });
  deps.metrics.pacing.inc({ decision: admission.admitted ? (admission.byTurn ? 'turn' : 'now') : 'deferred' });
  if (!admission.admitted) {
    deps.metrics.upstreamSkipped.inc({ service: 'avatars', reason: 'deferred' }, avatarCalls.length);
    deps.metrics.upstreamSkipped.inc({ service: 'recommendations', reason: 'deferred' }, plan.recommendations);
    return { ...content, turn: admission.turn, deferred: true };
  }
  const [fetched, recs] = await Promise.all([
    Promise.all(missing.map((key) => deps.avatars.avatarFor(key))),
    cachedRecs ?? deps.recommendations.forViewer(viewer, flavour),
  ]);
  missing.forEach((key, index) => content.avatars.set(key, fetched[index]!));
  content.recommendations = recs;
  deps.renderCost?.rendered();
  // What came out short for want of capacity is asked again on a turn of its own.
  const shortAvatars = missing.filter((_, index) => fetched[index]!.catchUp).map(avatarCall);
  if (shortAvatars.length > 0 || recs.catchUp)
    content.turn = deps.pacer.turnFor({ recommendations: recs.catchUp ? 1 : 0, renderer: 1 }, viewer.key, {
      priority: foreground,
      shared: shortAvatars,
    });
  return content;
}

/**
 * Builds the feed for one viewer. The kill switch is evaluated first; killed, not one
 * third-party call is made. Live, see liveContent.
 */
export function createFeedBuilder(deps: FeedDeps) {
  const safe = (key: string) => flagCatalog[key]!.safeDefault as never;

  return async function buildFeed(viewer: Viewer, options: RenderOptions = {}): Promise<FeedView> {
    const context = evaluationContext(viewer);
    const [showAvatars, flavour, theme] = await Promise.all([
      deps.flags.getBooleanValue(KILL_SWITCH, safe(KILL_SWITCH), context),
      deps.flags.getStringValue(RECS_FLAVOUR, safe(RECS_FLAVOUR), context),
      deps.flags.getStringValue(THEME, safe(THEME), context),
    ]);
    let content = noLiveContent();
    if (showAvatars) content = await liveContent(deps, viewer, flavour, options);
    else {
      deps.metrics.upstreamSkipped.inc({ service: 'avatars', reason: 'killed' });
      deps.metrics.upstreamSkipped.inc({ service: 'recommendations', reason: 'killed' });
    }
    const avatarOf = (key: string) => content.avatars.get(key) ?? FALLBACK;

    return {
      viewer: { ...viewer, avatar: avatarOf(viewer.key) },
      showAvatars,
      posts: posts.map((post) => ({ ...post, author: findPerson(post.author)!, avatar: avatarOf(post.author) })),
      recommendations: content.recommendations,
      flavour,
      // An unknown theme (a variant added by hand) renders as the safe one.
      theme: THEMES.includes(theme) ? theme : safe(THEME),
      people,
      turn: content.turn,
      deferred: content.deferred,
    };
  };
}

export type FeedBuilder = ReturnType<typeof createFeedBuilder>;
