import path from 'node:path';
import proxyaddr from 'proxy-addr';
import { z } from 'zod';
import { projectRoot } from './paths.js';

/**
 * The environment, parsed and validated once. Every variable is optional; the defaults run the
 * whole app offline. `.env.example` documents each one.
 */
const emptyAsUnset = (value: unknown) => (value === '' ? undefined : value);

const port = z.coerce.number().int().min(0).max(65535);

/**
 * Express's `trust proxy`: `true`/`false`, a hop count, or a comma list of addresses, subnets and
 * the names `loopback`, `linklocal`, `uniquelocal`. Kept as Express takes it (a list stays a
 * string), so that Express compiles it and a permissive `true` can be told apart (http/proxy-warnings.ts).
 */
export type TrustProxy = boolean | number | string;
const trustProxy = z.string().transform((text, context): TrustProxy => {
  const value = text.trim();
  if (value === 'true' || value === 'false') return value === 'true';
  if (/^\d+$/.test(value)) return Number(value);
  const list = value.split(',').map((entry) => entry.trim());
  try {
    // Compiled here only to refuse a typo at start ("lopback"): Express compiles it again.
    proxyaddr.compile(list);
  } catch (error) {
    context.addIssue({
      code: 'custom',
      message: `true, false, a hop count, or a comma list of addresses, subnets, loopback, linklocal, uniquelocal (${(error as Error).message})`,
    });
    return z.NEVER;
  }
  return list.join(',');
});
const httpUrl = z.url({ protocol: /^https?$/ });

const schema = z.object({
  PORT: z.preprocess(emptyAsUnset, port.default(3000)),
  HOST: z.preprocess(emptyAsUnset, z.string().min(1).default('127.0.0.1')),
  ADMIN_TOKEN: z.preprocess(emptyAsUnset, z.string().min(16, 'must be at least 16 characters').optional()),
  FLAGS_FILE: z.preprocess(emptyAsUnset, z.string().min(1).default('data/flags.json')),
  REDIS_URL: z.preprocess(emptyAsUnset, z.url({ protocol: /^rediss?$/ }).optional()),
  REDIS_CONNECT_TIMEOUT_MS: z.preprocess(emptyAsUnset, z.coerce.number().int().min(0).max(120_000).default(3000)),
  LAUNCHDARKLY_SDK_KEY: z.preprocess(emptyAsUnset, z.string().min(1).optional()),
  LAUNCHDARKLY_INIT_TIMEOUT_MS: z.preprocess(emptyAsUnset, z.coerce.number().int().min(0).max(120_000).default(5000)),
  // A Relay Proxy, or another LaunchDarkly instance: where the SDK polls, streams and sends events.
  LAUNCHDARKLY_BASE_URI: z.preprocess(emptyAsUnset, z.url({ protocol: /^https?$/ }).optional()),
  LAUNCHDARKLY_STREAM_URI: z.preprocess(emptyAsUnset, z.url({ protocol: /^https?$/ }).optional()),
  LAUNCHDARKLY_EVENTS_URI: z.preprocess(emptyAsUnset, z.url({ protocol: /^https?$/ }).optional()),
  AVATAR_API_URL: z.preprocess(emptyAsUnset, httpUrl.optional()),
  RECOMMENDATIONS_API_URL: z.preprocess(emptyAsUnset, httpUrl.optional()),
  UPSTREAM_TIMEOUT_MS: z.preprocess(emptyAsUnset, z.coerce.number().int().min(10).max(60_000).default(800)),
  RECOMMENDATIONS_CACHE_TTL_MS: z.preprocess(
    emptyAsUnset,
    z.coerce.number().int().min(0).max(3_600_000).default(30_000),
  ),
  UPSTREAM_MAX_CONCURRENCY: z.preprocess(emptyAsUnset, z.coerce.number().int().min(1).max(10_000).default(32)),
  AUTO_KILL: z.preprocess(
    emptyAsUnset,
    z
      .enum(['true', 'false', '1', '0'])
      .default('false')
      .transform((v) => v === 'true' || v === '1'),
  ),
  API_RATE_LIMIT_PER_MIN: z.preprocess(emptyAsUnset, z.coerce.number().int().min(1).default(120)),
  AUTH_FAILURES_PER_15_MIN: z.preprocess(emptyAsUnset, z.coerce.number().int().min(1).max(100_000).default(10)),
  SIGN_INS_PER_15_MIN: z.preprocess(emptyAsUnset, z.coerce.number().int().min(1).max(100_000).default(30)),
  MAX_SOCKETS_PER_ADDRESS: z.preprocess(emptyAsUnset, z.coerce.number().int().min(0).max(10_000_000).default(1000)),
  TRUST_PROXY: z.preprocess(emptyAsUnset, trustProxy.optional()),
  SIMULATOR_PORT: z.preprocess(emptyAsUnset, port.default(3001)),
  SIMULATOR_LATENCY_MS: z.preprocess(emptyAsUnset, z.coerce.number().min(0).max(60_000).default(120)),
  SIMULATOR_ERROR_RATE: z.preprocess(emptyAsUnset, z.coerce.number().min(0).max(1).default(0)),
  LOG_LEVEL: z.preprocess(
    emptyAsUnset,
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ),
  NODE_ENV: z.preprocess(emptyAsUnset, z.string().default('production')),
  SHUTDOWN_GRACE_MS: z.preprocess(emptyAsUnset, z.coerce.number().int().min(0).max(120_000).default(10_000)),
});

export type Env = z.infer<typeof schema>;

export interface Config {
  port: number;
  host: string;
  adminToken: string | undefined;
  flagsFile: string;
  redisUrl: string | undefined;
  redisConnectTimeoutMs: number;
  launchDarklySdkKey: string | undefined;
  launchDarklyInitTimeoutMs: number;
  /** Where the SDK polls, streams and sends events (a Relay Proxy); unset members: LaunchDarkly's own. */
  launchDarklyEndpoints: { baseUri: string | undefined; streamUri: string | undefined; eventsUri: string | undefined };
  avatarApiUrl: string | undefined;
  recommendationsApiUrl: string | undefined;
  upstreamTimeoutMs: number;
  upstreamMaxConcurrency: number;
  recommendationsCacheTtlMs: number;
  apiRateLimitPerMin: number;
  /** Failed authentications from one address in 15 minutes before it is refused (429) until the window ends. */
  authFailureLimit: number;
  /** Admin sign-ins (successful ones) from one address in 15 minutes before it is refused (429) until the window ends. */
  signInLimit: number;
  /** Socket.IO connections from one client address on this instance; 0: no cap. */
  maxSocketsPerAddress: number;
  /** Express's `trust proxy`: which hops' X-Forwarded-For and X-Forwarded-Proto to believe (false: none). */
  trustProxy: TrustProxy;
  autoKill: boolean;
  simulator: { port: number; latencyMs: number; errorRate: number };
  logLevel: Env['LOG_LEVEL'];
  shutdownGraceMs: number;
  /** `development` (npm run dev): templates are re-read on every render. */
  development: boolean;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses an environment (process.env by default). Throws a ConfigError naming the bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? 'environment');
    const given = env[variable];
    const shown =
      variable === 'ADMIN_TOKEN' || variable === 'LAUNCHDARKLY_SDK_KEY' ? '(hidden)' : JSON.stringify(given);
    throw new ConfigError(`Invalid environment variable ${variable}=${shown}: ${issue.message}`);
  }
  const e = parsed.data;
  return {
    port: e.PORT,
    host: e.HOST,
    adminToken: e.ADMIN_TOKEN,
    flagsFile: path.resolve(projectRoot, e.FLAGS_FILE),
    redisUrl: e.REDIS_URL,
    redisConnectTimeoutMs: e.REDIS_CONNECT_TIMEOUT_MS,
    launchDarklySdkKey: e.LAUNCHDARKLY_SDK_KEY,
    launchDarklyInitTimeoutMs: e.LAUNCHDARKLY_INIT_TIMEOUT_MS,
    launchDarklyEndpoints: {
      baseUri: e.LAUNCHDARKLY_BASE_URI,
      streamUri: e.LAUNCHDARKLY_STREAM_URI,
      eventsUri: e.LAUNCHDARKLY_EVENTS_URI,
    },
    avatarApiUrl: e.AVATAR_API_URL,
    recommendationsApiUrl: e.RECOMMENDATIONS_API_URL,
    upstreamTimeoutMs: e.UPSTREAM_TIMEOUT_MS,
    upstreamMaxConcurrency: e.UPSTREAM_MAX_CONCURRENCY,
    recommendationsCacheTtlMs: e.RECOMMENDATIONS_CACHE_TTL_MS,
    apiRateLimitPerMin: e.API_RATE_LIMIT_PER_MIN,
    authFailureLimit: e.AUTH_FAILURES_PER_15_MIN,
    signInLimit: e.SIGN_INS_PER_15_MIN,
    maxSocketsPerAddress: e.MAX_SOCKETS_PER_ADDRESS,
    trustProxy: e.TRUST_PROXY ?? false,
    autoKill: e.AUTO_KILL,
    simulator: { port: e.SIMULATOR_PORT, latencyMs: e.SIMULATOR_LATENCY_MS, errorRate: e.SIMULATOR_ERROR_RATE },
    logLevel: e.LOG_LEVEL,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    development: e.NODE_ENV === 'development',
  };
}
