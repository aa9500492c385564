import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import type { Logger } from '../observability/logger.js';
import { catchesUp, type UpstreamClient } from './client.js';
import { SingleFlight } from './single-flight.js';

/** One recommendation, as the third party answers it (and as the feed's generic ones are written). */
export interface Recommendation {
  id: string;
  title: string;
  kind: string;
  blurb: string;
}

export interface Recommendations {
  source: 'live' | 'fallback';
  items: readonly (Recommendation & { reason?: string })[];
  /** A fallback because we were saturated, not because the third party failed: worth asking again. */
  catchUp?: boolean;
}

export interface RecommendationService {
  /** Never throws: any failure gives the generic recommendations. */
  forViewer(viewer: { key: string; groups: readonly string[] }, flavour: string): Promise<Recommendations>;
  /** This viewer's recommendations if they are cached (no call needed), else undefined. */
  cached(viewer: { key: string; groups: readonly string[] }, flavour: string): Recommendations | undefined;
}

const text = (max: number) => z.string().min(1).max(max);
const body = z.object({
  items: z
    .array(z.object({ id: text(64), title: text(120), kind: text(32), blurb: text(280), reason: text(120).optional() }))
    .max(20),
});

/**
 * Personalized recommendations: `GET {RECOMMENDATIONS_API_URL}?user=&groups=&flavour=`. Cached
 * briefly per viewer and flavour (a reload, a burst of page views or a restore storm makes one
 * call per viewer, not one per view), and concurrent requests for one viewer share one call; a
 * call the page stopped waiting for still fills the cache. Fallbacks are never cached: the next
 * view tries again.
 */
export function createRecommendationService(options: {
  baseUrl: string;
  client: UpstreamClient;
  logger: Logger;
  ttlMs: number;
  /** What a viewer gets when the third party cannot answer: the feed's generic recommendations. */
  fallback: Recommendations;
}): RecommendationService {
  const flights = new SingleFlight<Recommendations>();
  const cache =
    options.ttlMs > 0 ? new LRUCache<string, Recommendations>({ max: 20_000, ttl: options.ttlMs }) : undefined;
  const keyOf = (viewer: { key: string; groups: readonly string[] }, flavour: string) => {
    const groups = [...viewer.groups].sort().join(',');
    return { key: `${viewer.key}|${groups}|${flavour}`, groups };
  };
  return {
    cached: (viewer, flavour) => cache?.get(keyOf(viewer, flavour).key),
    async forViewer(viewer, flavour) {
      const { key, groups } = keyOf(viewer, flavour);
      const cached = cache?.get(key);
      if (cached) return cached;
      const call = flights.run(key, async () => {
        const { items } = await options.client.getJson(options.baseUrl, (data) => body.parse(data), {
          user: viewer.key,
          groups,
          flavour,
        });
        const live: Recommendations = { source: 'live', items };
        cache?.set(key, live);
        return live;
      });
      try {
        return await options.client.within(call);
      } catch (error) {
        options.logger.debug({ err: error, viewer: viewer.key }, 'recommendations fell back');
        return { ...options.fallback, catchUp: catchesUp(error) };
      }
    },
  };
}
