import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import { FALLBACK_AVATAR } from '../../protocol/wire.js';
import type { Logger } from '../observability/logger.js';
import { catchesUp, type UpstreamClient } from './client.js';
import { SingleFlight } from './single-flight.js';

export { FALLBACK_AVATAR };

export interface Avatar {
  url: string;
  live: boolean;
  /** A fallback because we were saturated, not because the third party failed: worth asking again. */
  catchUp?: boolean;
}

export interface AvatarService {
  /** Never throws: any failure gives the fallback avatar. */
  avatarFor(personKey: string): Promise<Avatar>;
  /** The avatar if it is cached (no call needed), else undefined. */
  cached(personKey: string): Avatar | undefined;
  /** Whether a call for this person's avatar is in flight now: asking for it costs no call of its own. */
  fetching(personKey: string): boolean;
  /** Origins the avatars' images are served from (for the Content-Security-Policy). */
  readonly imageOrigins: string[];
}

/**
 * Avatars from the third party: `GET {AVATAR_API_URL}/{person}` answers `{ url }`, the image the
 * browser then loads. URLs are cached per person (TTL) and concurrent look-ups coalesced; a call
 * the page stopped waiting for still fills the cache. An image URL must be http(s) on the avatar
 * service's own origin: the page's CSP allows images from there and nowhere else, so anything
 * else is an invalid answer.
 */
export function createAvatarService(options: {
  baseUrl: string;
  client: UpstreamClient;
  logger: Logger;
  ttlMs?: number;
}): AvatarService {
  const origin = new URL(options.baseUrl).origin;
  const body = z.object({
    url: z
      .url({ protocol: /^https?$/ })
      .refine((url) => new URL(url).origin === origin, 'image not on the avatar origin'),
  });
  const cache = new LRUCache<string, string>({ max: 10_000, ttl: options.ttlMs ?? 5 * 60_000 });
  const flights = new SingleFlight<string>();
  const base = options.baseUrl.replace(/\/+$/, '');

  return {
    imageOrigins: [origin],
    fetching: (personKey) => flights.has(personKey),
    cached(personKey) {
      const url = cache.get(personKey);
      return url ? { url, live: true } : undefined;
    },
    async avatarFor(personKey) {
      const cached = cache.get(personKey);
      if (cached) return { url: cached, live: true };
      const call = flights.run(personKey, async () => {
        const { url } = await options.client.getJson(`${base}/${encodeURIComponent(personKey)}`, (data) =>
          body.parse(data),
        );
        cache.set(personKey, url);
        return url;
      });
      try {
        return { url: await options.client.within(call), live: true };
      } catch (error) {
        options.logger.debug({ err: error, personKey }, 'avatar fell back');
        return { url: FALLBACK_AVATAR, live: false, catchUp: catchesUp(error) };
      }
    },
  };
}
