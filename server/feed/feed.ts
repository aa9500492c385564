import type { Client } from '@openfeature/server-sdk';
import { flagCatalog, KILL_SWITCH, RECS_FLAVOUR, THEME } from '../flags/catalog.js';
import type { Metrics } from '../observability/metrics.js';
import { FALLBACK_AVATAR, type Avatar, type AvatarService } from '../upstream/avatars.js';
import { FALLBACK_RECOMMENDATIONS, type RecommendationService, type Recommendations } from '../upstream/recommendations.js';
import { findPerson, people, posts, type Person, type Post } from './content.js';
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
}

export const THEMES = ['light', 'dark', 'aurora'];

const FALLBACK: Avatar = { url: FALLBACK_AVATAR, live: false };

/**
 * Builds the feed for one viewer. The kill switch is evaluated first; killed, not one
 * third-party call is made. Live, every avatar and the recommendations are fetched
 * concurrently, so the page waits at most about one upstream timeout, and any failure is a
 * fallback, never an error.
 */
export function createFeedBuilder(deps: {
  flags: Client;
  avatars: AvatarService;
  recommendations: RecommendationService;
  metrics: Metrics;
}) {
  const safe = (key: string) => flagCatalog[key]!.safeDefault as never;

  return async function buildFeed(viewer: Viewer): Promise<FeedView> {
    const context = evaluationContext(viewer);
    const [showAvatars, flavour, theme] = await Promise.all([
      deps.flags.getBooleanValue(KILL_SWITCH, safe(KILL_SWITCH), context),
      deps.flags.getStringValue(RECS_FLAVOUR, safe(RECS_FLAVOUR), context),
      deps.flags.getStringValue(THEME, safe(THEME), context),
    ]);
    const authors = [...new Set([viewer.key, ...posts.map((post) => post.author)])];

    let avatarOf: (key: string) => Avatar = () => FALLBACK;
    let recommendations = FALLBACK_RECOMMENDATIONS;
    if (showAvatars) {
      const [avatars, recs] = await Promise.all([
        Promise.all(authors.map((key) => deps.avatars.avatarFor(key))),
        deps.recommendations.forViewer(viewer, flavour),
      ]);
      const byKey = new Map(authors.map((key, index) => [key, avatars[index]!]));
      avatarOf = (key) => byKey.get(key) ?? FALLBACK;
      recommendations = recs;
    } else {
      deps.metrics.upstreamSkipped.inc({ service: 'avatars', reason: 'killed' });
      deps.metrics.upstreamSkipped.inc({ service: 'recommendations', reason: 'killed' });
    }

    return {
      viewer: { ...viewer, avatar: avatarOf(viewer.key) },
      showAvatars,
      posts: posts.map((post) => ({ ...post, author: findPerson(post.author)!, avatar: avatarOf(post.author) })),
      recommendations,
      flavour,
      // An unknown theme (a variant added by hand) renders as the safe one.
      theme: THEMES.includes(theme) ? theme : (safe(THEME) as string),
      people,
    };
  };
}

export type FeedBuilder = ReturnType<typeof createFeedBuilder>;
