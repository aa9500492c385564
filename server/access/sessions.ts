import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { digestOf, type Principal } from './tokens.js';

/** The admin page's session cookie: HttpOnly, SameSite=Strict; no script can read it. */
export const SESSION_COOKIE = 'ks_admin';
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/**
 * Sessions one token holds at once; its next sign-in ends its oldest. A cap per token, not one
 * for everybody: no token's sign-ins can push out another token's sessions.
 */
export const SESSIONS_PER_TOKEN = 20;

/** A signed-in admin page: who it acts as, and the token its writes must echo (X-CSRF-Token). */
export interface Session {
  principal: Principal;
  csrf: string;
  expiresAt: number;
}

/** What the store keeps a session under: the digest of its id (a dump of the store holds no usable id). */
export const sessionKeyOf = (id: string): string => digestOf(id);

/**
 * Sessions the store ended before their time, by key: `signed-out` by their own sign-out,
 * `replaced` by the per-token cap. Expiry is not told: whoever holds a session knows when it ends.
 */
export interface EndedSessions {
  keys: string[];
  reason: 'signed-out' | 'replaced';
}

/**
 * Sessions of the admin page, by key. In memory for one instance, or in Redis (with
 * `REDIS_URL`) so that every instance knows them. Whether the token behind a session is still
 * valid is the caller's check, on every use.
 */
export interface SessionStore {
  /** Starts a session; returns the id for the cookie. */
  create(principal: Principal): Promise<{ id: string; key: string; session: Session }>;
  find(id: string | undefined): Promise<Session | undefined>;
  end(id: string | undefined): Promise<void>;
  /** Hears of every session this store ends (on this instance: other instances hear through the caller). */
  onEnded(listener: (ended: EndedSessions) => void): void;
}

const sessionSchema = z.object({
  principal: z.object({ name: z.string(), scope: z.enum(['full', 'read-only']), digest: z.string() }),
  csrf: z.string(),
  expiresAt: z.number(),
});

const newSession = (principal: Principal, now: number) => {
  const id = randomBytes(32).toString('base64url');
  return {
    id,
    key: sessionKeyOf(id),
    session: { principal, csrf: randomBytes(24).toString('base64url'), expiresAt: now + SESSION_TTL_MS },
  };
};

function endedListeners() {
  const listeners: ((ended: EndedSessions) => void)[] = [];
  return {
    add: (listener: (ended: EndedSessions) => void) => void listeners.push(listener),
    tell(ended: EndedSessions) {
      if (ended.keys.length === 0) return;
      for (const listener of listeners) listener(ended);
    },
  };
}

/**
 * One instance's sessions. Bounded by the tokens that exist: each keeps SESSIONS_PER_TOKEN at
 * most, its expired ones dropped at its next sign-in.
 */
export function createMemorySessionStore(now: () => number = Date.now): SessionStore {
  const sessions = new Map<string, Session>();
  // Each token's session keys, oldest first.
  const byToken = new Map<string, string[]>();
  const ended = endedListeners();
  const live = (key: string) => {
    const session = sessions.get(key);
    if (session && session.expiresAt > now()) return true;
    sessions.delete(key);
    return false;
  };
  return {
    async create(principal) {
      const created = newSession(principal, now());
      const keys = (byToken.get(principal.digest) ?? []).filter(live);
      keys.push(created.key);
      sessions.set(created.key, created.session);
      const replaced = keys.splice(0, Math.max(0, keys.length - SESSIONS_PER_TOKEN));
      for (const key of replaced) sessions.delete(key);
      byToken.set(principal.digest, keys);
      ended.tell({ keys: replaced, reason: 'replaced' });
      return created;
    },
    async find(id) {
      if (!id) return undefined;
      const key = sessionKeyOf(id);
      return live(key) ? sessions.get(key) : undefined;
    },
    async end(id) {
      if (!id) return;
      const key = sessionKeyOf(id);
      const session = sessions.get(key);
      if (!session) return;
      sessions.delete(key);
      const keys = byToken.get(session.principal.digest)?.filter((other) => other !== key) ?? [];
      if (keys.length > 0) byToken.set(session.principal.digest, keys);
      else byToken.delete(session.principal.digest);
      ended.tell({ keys: [key], reason: 'signed-out' });
    },
    onEnded: ended.add,
  };
}

const PREFIX = 'killswitch:session:';
/** A token's sessions: a sorted set of their keys, scored by when each started (oldest first). */
const TOKEN_SESSIONS = (tokenDigest: string) => `killswitch:sessions-of:${tokenDigest}`;

/**
 * Starts a session and applies its token's cap in one step, so that two instances signing the
 * same token in at once still leave it SESSIONS_PER_TOKEN at most. Scores rise strictly (a sign-in
 * in the same millisecond as the last comes after it): "oldest" is always the first signed in.
 * Returns the keys of the sessions it ended. It deletes session keys it derives (not declared in
 * KEYS): fine on one Redis, not on Redis Cluster.
 * KEYS: the new session's key, its token's set. ARGV: its key, its JSON, TTL ms, now ms, cap, prefix.
 */
const CREATE_SESSION = `
local ttl = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
local score = now
local newest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) >= score then score = tonumber(newest[2]) + 1 end
redis.call('ZADD', KEYS[2], score, ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
local replaced = {}
if over > 0 then
  replaced = redis.call('ZRANGE', KEYS[2], 0, over - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
  for _, key in ipairs(replaced) do redis.call('DEL', ARGV[6] .. key) end
end
redis.call('PEXPIRE', KEYS[2], ttl)
return replaced
`;

export function createRedisSessionStore(redis: Redis, now: () => number = Date.now): SessionStore {
  const ended = endedListeners();
  const parse = (text: string | null) => {
    const parsed = text ? sessionSchema.safeParse(JSON.parse(text)) : undefined;
    return parsed?.success ? parsed.data : undefined;
  };
  return {
    async create(principal) {
      const created = newSession(principal, now());
      const replaced = (await redis.eval(
        CREATE_SESSION,
        2,
        PREFIX + created.key,
        TOKEN_SESSIONS(principal.digest),
        created.key,
        JSON.stringify(created.session),
        SESSION_TTL_MS,
        now(),
        SESSIONS_PER_TOKEN,
        PREFIX,
      )) as string[];
      ended.tell({ keys: replaced, reason: 'replaced' });
      return created;
    },
    async find(id) {
      if (!id) return undefined;
      const session = parse(await redis.get(PREFIX + sessionKeyOf(id)));
      return session && session.expiresAt > now() ? session : undefined;
    },
    async end(id) {
      if (!id) return;
      const key = sessionKeyOf(id);
      const session = parse(await redis.get(PREFIX + key));
      const removed = redis.multi().del(PREFIX + key);
      if (session) removed.zrem(TOKEN_SESSIONS(session.principal.digest), key);
      const [[, deleted] = []] = (await removed.exec()) ?? [];
      // Told once, whichever instance deleted it.
      if (deleted === 1) ended.tell({ keys: [key], reason: 'signed-out' });
    },
    onEnded: ended.add,
  };
}
