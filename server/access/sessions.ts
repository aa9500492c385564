import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import { digestOf, type Principal } from './tokens.js';

/** The admin page's session cookie: HttpOnly, SameSite=Strict; no script can read it. */
export const SESSION_COOKIE = 'ks_admin';
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

/** A signed-in admin page: who it acts as, and the token its writes must echo (X-CSRF-Token). */
export interface Session {
  principal: Principal;
  csrf: string;
  expiresAt: number;
}

/**
 * Sessions of the admin page, by the digest of their id (a dump of the store holds no usable
 * id). In memory for one instance, or in Redis (with `REDIS_URL`) so that every instance knows
 * them. Whether the token behind a session is still valid is the caller's check, on every use.
 */
export interface SessionStore {
  /** Starts a session; returns the id for the cookie. */
  create(principal: Principal): Promise<{ id: string; session: Session }>;
  find(id: string | undefined): Promise<Session | undefined>;
  end(id: string | undefined): Promise<void>;
}

const sessionSchema = z.object({
  principal: z.object({ name: z.string(), scope: z.enum(['full', 'read-only']), digest: z.string() }),
  csrf: z.string(),
  expiresAt: z.number(),
});

const newSession = (principal: Principal, now: number) => ({
  id: randomBytes(32).toString('base64url'),
  session: { principal, csrf: randomBytes(24).toString('base64url'), expiresAt: now + SESSION_TTL_MS },
});

export function createMemorySessionStore(now: () => number = Date.now): SessionStore {
  const sessions = new LRUCache<string, Session>({ max: 10_000, ttl: SESSION_TTL_MS });
  return {
    async create(principal) {
      const created = newSession(principal, now());
      sessions.set(digestOf(created.id), created.session);
      return created;
    },
    async find(id) {
      const session = id ? sessions.get(digestOf(id)) : undefined;
      return session && session.expiresAt > now() ? session : undefined;
    },
    async end(id) {
      if (id) sessions.delete(digestOf(id));
    },
  };
}

const KEY = (digest: string) => `killswitch:session:${digest}`;

export function createRedisSessionStore(redis: Redis, now: () => number = Date.now): SessionStore {
  return {
    async create(principal) {
      const created = newSession(principal, now());
      await redis.set(KEY(digestOf(created.id)), JSON.stringify(created.session), 'PX', SESSION_TTL_MS);
      return created;
    },
    async find(id) {
      if (!id) return undefined;
      const text = await redis.get(KEY(digestOf(id)));
      const parsed = text ? sessionSchema.safeParse(JSON.parse(text)) : undefined;
      return parsed?.success && parsed.data.expiresAt > now() ? parsed.data : undefined;
    },
    async end(id) {
      if (id) await redis.del(KEY(digestOf(id)));
    },
  };
}
