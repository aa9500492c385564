import { resolveAdminToken } from '../access/admin-token.js';
import { createAccess, createAuthFailures, createSignInLimit, type Access } from '../access/auth.js';
import { createMemorySessionStore, createRedisSessionStore, type SessionStore } from '../access/sessions.js';
import { createFileTokenStore, createRedisTokenStore } from '../access/token-store.js';
import { createTokenRegistry, type TokenRegistry } from '../access/tokens.js';
import type { Config } from '../config.js';
import type { Logger } from '../observability/logger.js';
import { connectWithin, createRedisClient } from '../redis.js';
import { storeFiles } from '../store-files.js';
import type { Closers } from './closers.js';

const FIFTEEN_MINUTES = 15 * 60;

export interface AccessParts {
  access: Access;
  registry: TokenRegistry;
  sessions: SessionStore;
  adminToken: string;
  /** The admin token was made at this start: the one time it may be shown (see main.ts). */
  adminTokenGenerated: boolean;
}

/**
 * Who may read and write: the admin token, named tokens (their digests beside the flag store, or
 * in Redis), the admin page's sessions, and the limits per address (failed authentications,
 * sign-ins). With Redis, commands fail at once while it is away: the named tokens last loaded keep
 * working, the counts fall back to memory, and the tokens are loaded again when Redis is back.
 */
export async function startAccess(
  config: Config,
  logger: Logger,
  now: () => number,
  closers: Closers,
): Promise<AccessParts> {
  const files = storeFiles(config.flagsFile);
  const { token: adminToken, generated: adminTokenGenerated } = await resolveAdminToken({
    configured: config.adminToken,
    file: files.adminToken,
    logger,
  });
  const redis = config.redisUrl ? createRedisClient(config.redisUrl, { logger, name: 'access' }) : undefined;
  if (redis) {
    closers.add('access redis', () => redis.disconnect());
    await connectWithin(redis, config.redisConnectTimeoutMs);
  }
  const registry = await createTokenRegistry({
    adminToken,
    store: redis ? createRedisTokenStore({ redis, logger }) : createFileTokenStore({ dir: files.dir, logger }),
    logger: logger.child({ component: 'access' }),
    loadTimeoutMs: config.redisConnectTimeoutMs,
  });
  closers.add('token registry', () => registry.close());
  const sessions = redis ? createRedisSessionStore(redis, now) : createMemorySessionStore(now);
  const access = createAccess({
    registry,
    sessions,
    failures: createAuthFailures({ limit: config.authFailureLimit, windowSeconds: FIFTEEN_MINUTES, redis }),
    signIns: createSignInLimit({ limit: config.signInLimit, windowSeconds: FIFTEEN_MINUTES, redis }),
  });
  return { access, registry, sessions, adminToken, adminTokenGenerated };
}
