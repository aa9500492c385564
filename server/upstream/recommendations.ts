import { z } from 'zod';
import { genericRecommendations, type Recommendation } from '../feed/content.js';
import type { Logger } from '../observability/logger.js';
import type { UpstreamClient } from './client.js';
import { SingleFlight } from './single-flight.js';

export interface Recommendations {
  source: 'live' | 'fallback';
  items: readonly (Recommendation & { reason?: string })[];
}

export interface RecommendationService {
  /** Never throws: any failure gives the generic recommendations. */
  forViewer(viewer: { key: string; groups: readonly string[] }, flavour: string): Promise<Recommendations>;
}

export const FALLBACK_RECOMMENDATIONS: Recommendations = { source: 'fallback', items: genericRecommendations };

const text = (max: number) => z.string().min(1).max(max);
const body = z.object({
  items: z
    .array(z.object({ id: text(64), title: text(120), kind: text(32), blurb: text(280), reason: text(120).optional() }))
    .max(20),
});

/**
 * Personalized recommendations: `GET {RECOMMENDATIONS_API_URL}?user=&groups=`. Not cached (they
 * are per viewer and per moment), but concurrent requests for one viewer share one call.
 */
export function createRecommendationService(options: {
  baseUrl: string;
  client: UpstreamClient;
  logger: Logger;
}): RecommendationService {
  const flights = new SingleFlight<Recommendations>();
  return {
    forViewer(viewer, flavour) {
      const groups = [...viewer.groups].sort().join(',');
      return flights.run(`${viewer.key}|${groups}|${flavour}`, async () => {
        try {
          const { items } = await options.client.getJson(options.baseUrl, (data) => body.parse(data), {
            user: viewer.key,
            groups,
            flavour,
          });
          return { source: 'live', items };
        } catch (error) {
          options.logger.debug({ err: error, viewer: viewer.key }, 'recommendations fell back');
          return FALLBACK_RECOMMENDATIONS;
        }
      });
    },
  };
}
