import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OpenFeature } from '@openfeature/server-sdk';
import { Redis } from 'ioredis';
import { resolveAdminToken } from './access/admin-token.js';
import { createAccess, createAuthFailures, createSignInLimit } from './access/auth.js';
import { createMemorySessionStore, createRedisSessionStore } from './access/sessions.js';
import { createFileTokenStore, createRedisTokenStore } from './access/token-store.js';
import { createTokenRegistry } from './access/tokens.js';
import type { TrustProxyFn } from './access/client-address.js';
import { createAdminState } from './admin/routes.js';
import { createApp } from './app.js';
import { ConfigError, type Config } from './config.js';
import { createFeedBuilder } from './feed/feed.js';
import { createRefetchPolicy } from './feed/refetch-policy.js';
import { FALLBACK_RECOMMENDATIONS } from './feed/content.js';
import { evaluationContext, isValidViewerKey, viewerFor } from './feed/viewer.js';
import type { LDOptions } from '@launchdarkly/node-server-sdk';
import { defaultFlagDocument, flagCatalog, THEME } from './flags/catalog.js';
import { FileBackend } from './flags/backend-file.js';
import { storeFiles } from './store-files.js';
import { RedisBackend } from './flags/backend-redis.js';
import { killedForEveryone } from './flags/kill-switch.js';
import { createLaunchDarklyProvider } from './flags/launchdarkly.js';
import { FlagRepositoryProvider, type FlagsProvider } from './flags/provider.js';
import { followReadiness, sourceName } from './flags/readiness.js';
import { FlagRepository } from './flags/repository.js';
import type { Logger } from './observability/logger.js';
import { followLogLevelFlag } from './flags/log-level-flag.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { createRealtime, type Realtime } from './realtime/sockets.js';
import { autoKillOnBreakerOpen } from './upstream/auto-kill.js';
import { createAvatarService } from './upstream/avatars.js';
import { createUpstreamClient, type UpstreamClient } from './upstream/client.js';
import { watchLoopStalls } from './upstream/loop-stalls.js';
import { createPacer } from './upstream/pacing.js';
import { measureRenderCost } from './upstream/render-cost.js';
import { createRecommendationService } from './upstream/recommendations.js';
import { startSimulator, type Simulator } from './upstream/simulator.js';

export interface RunningApp {
  url: string;
  port: number;
  /** Evaluates the flags and tells of their changes and health (the repository's, or LaunchDarkly's). */
  provider: FlagsProvider;
  /** The flags, when they are ours to change (absent with LaunchDarkly). */
  repository: FlagRepository | undefined;
  metrics: Metrics;
  realtime: Realtime;
  /** The third-party clients (avatars, recommendations): their breakers and capacity. */
  upstream: readonly UpstreamClient[];
  /** The built-in third party, when the app started one. */
  simulator: Simulator | undefined;
  adminToken: string;
  /** The admin token was made at this start: the one time it may be shown (see main.ts). */
  adminTokenGenerated: boolean;
  logger: Logger;
  isReady(): boolean;
  /** Graceful: not ready, browsers told to reconnect, requests drained, store and audit flushed. */
  close(): Promise<void>;
}

/**
 * The composition root, top to bottom: config -> third party -> flags (backend -> repository ->
 * provider) -> access -> upstream clients -> Socket.IO -> app -> HTTP server -> listen. Only here are concrete objects made; everything else
 * gets its dependencies passed in.
 */
export interface StartOptions {
  collectDefaultMetrics?: boolean;
  /** Extra LaunchDarkly SDK options (the tests' TestData data source). */
  launchDarkly?: LDOptions;
  /** The admin sessions' clock (their expiry): tests move it forward instead of waiting 12 h. */
  now?: () => number;
}

export async function startApp(config: Config, logger: Logger, options: StartOptions = {}): Promise<RunningApp> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const step of cleanups.reverse()) await step().catch(() => undefined);
  };
  try {
    let simulator: Simulator | undefined;
    let avatarApiUrl = config.avatarApiUrl;
    let recommendationsApiUrl = config.recommendationsApiUrl;
    if (!avatarApiUrl || !recommendationsApiUrl) {
      const knobs = { latencyMs: config.simulator.latencyMs, errorRate: config.simulator.errorRate };
      try {
        simulator = await startSimulator({ port: config.simulator.port, host: config.host, knobs });
        logger.info({ origin: simulator.origin }, 'built-in third-party simulator started');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
        // A second instance on this machine (its simulator has the port): one of our own
        // elsewhere, so that this instance never depends on another one staying up.
        simulator = await startSimulator({ port: 0, host: config.host, knobs });
        logger.info(
          { origin: simulator.origin, taken: config.simulator.port },
          `SIMULATOR_PORT ${config.simulator.port} is in use (another instance's simulator?): this instance's built-in simulator runs on ${simulator.origin}`,
        );
      }
      const started = simulator;
      cleanups.push(() => started.close());
      avatarApiUrl ??= simulator.avatarApiUrl;
      recommendationsApiUrl ??= simulator.recommendationsApiUrl;
    }

    const files = storeFiles(config.flagsFile);
    // The flags: LaunchDarkly's (read-only here), or ours in Redis or the file, through one repository.
    let repository: FlagRepository | undefined;
    let provider: FlagsProvider;
    if (config.launchDarklySdkKey) {
      provider = createLaunchDarklyProvider({
        sdkKey: config.launchDarklySdkKey,
        logger,
        initTimeoutMs: config.launchDarklyInitTimeoutMs,
        sdkOptions: {
          // Only what is set: an unset endpoint is LaunchDarkly's own.
          ...Object.fromEntries(Object.entries(config.launchDarklyEndpoints).filter(([, uri]) => uri !== undefined)),
          ...options.launchDarkly,
        },
      });
    } else {
      const backend = config.redisUrl
        ? new RedisBackend({ url: config.redisUrl, logger, connectTimeoutMs: config.redisConnectTimeoutMs })
        : new FileBackend({ file: config.flagsFile, logger: logger.child({ component: 'flag-file' }) });
      const flagRepository = new FlagRepository(backend, logger.child({ component: 'flags' }), defaultFlagDocument);
      await flagRepository.start();
      cleanups.push(() => flagRepository.close());
      repository = flagRepository;
      provider = new FlagRepositoryProvider(flagRepository, logger);
    }

    // A domain per app instance: OpenFeature's API is global, and tests run several apps in one process.
    const domain = `killswitch-${randomUUID()}`;
    const flagsReadiness = followReadiness(OpenFeature.getClient(domain), sourceName(provider.kind));
    // Fails when the flags could not be loaded: the provider has said why, the safe defaults
    // serve, /readyz answers 503, and the provider tells OpenFeature when it is ready.
    await OpenFeature.setProviderAndWait(domain, provider).catch(() => undefined);
    const { onClose } = provider;
    cleanups.push(async () => onClose?.call(provider));
    const flags = OpenFeature.getClient(domain);
    const stopFollowingLogLevel = followLogLevelFlag(provider, logger, config.logLevel);
    cleanups.push(async () => stopFollowingLogLevel());

    const { token: adminToken, generated: adminTokenGenerated } = await resolveAdminToken({ configured: config.adminToken, file: files.adminToken, logger });
    // Who may read and write: named tokens (their digests beside the flag store, or in Redis),
    // the admin page's sessions, and the count of failed authentications per address.
    let accessRedis: Redis | undefined;
    if (config.redisUrl) {
      // Commands fail at once while Redis is away (no queue to reject at shutdown): the named
      // tokens last loaded keep working, the failure count falls back to memory, and the tokens
      // are loaded again when Redis is back.
      const redis = new Redis(config.redisUrl, {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        retryStrategy: (times) => Math.min(times * 100, 2000),
      });
      redis.on('error', (error) => logger.debug({ err: error }, 'access redis error'));
      cleanups.push(async () => redis.disconnect());
      await Promise.race([redis.connect().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, config.redisConnectTimeoutMs).unref())]);
      accessRedis = redis;
    }
    const registry = await createTokenRegistry({
      adminToken,
      store: accessRedis ? createRedisTokenStore({ redis: accessRedis, logger }) : createFileTokenStore({ dir: files.dir, logger }),
      logger: logger.child({ component: 'access' }),
      loadTimeoutMs: config.redisConnectTimeoutMs,
    });
    cleanups.push(() => registry.close());
    const now = options.now ?? Date.now;
    const sessions = accessRedis ? createRedisSessionStore(accessRedis, now) : createMemorySessionStore(now);
    const access = createAccess({
      registry,
      sessions,
      failures: createAuthFailures({ limit: config.authFailureLimit, windowSeconds: 15 * 60, redis: accessRedis }),
      signIns: createSignInLimit({ limit: config.signInLimit, windowSeconds: 15 * 60, redis: accessRedis }),
    });
    const metrics = createMetrics({ collectDefaults: options.collectDefaultMetrics ?? true });
    repository?.onChange((changes) => {
      for (const change of changes) metrics.flagFlips.inc({ key: change.key, source: change.actor.source });
    });

    const policy = { timeoutMs: config.upstreamTimeoutMs, maxConcurrent: config.upstreamMaxConcurrency };
    // A timeout during a stall of our own is not the third party's failure (see client.ts).
    const stalls = watchLoopStalls();
    cleanups.push(async () => stalls.close());
    // A call still queued when the switch goes off for everyone is dropped, not made late.
    const stillWanted = async () => !(await killedForEveryone(provider));
    const client = (service: 'avatars' | 'recommendations') =>
      createUpstreamClient({ service, policy, metrics, stalls, stillWanted, logger: logger.child({ component: `upstream-${service}` }) });
    const upstreamClients = [client('avatars'), client('recommendations')] as const;
    // Live renders are paced by the third party's measured capacity and by this process's own (the
    // CPU a live render costs): a restore stampedes neither.
    const renderCost = measureRenderCost();
    cleanups.push(async () => renderCost.close());
    const pacer = createPacer({ services: [...upstreamClients, renderCost], budgetMs: config.upstreamTimeoutMs / 2 });
    const avatars = createAvatarService({ baseUrl: avatarApiUrl, client: upstreamClients[0], logger });
    const recommendations = createRecommendationService({
      baseUrl: recommendationsApiUrl,
      client: upstreamClients[1],
      logger,
      ttlMs: config.recommendationsCacheTtlMs,
      fallback: FALLBACK_RECOMMENDATIONS,
    });
    if (config.autoKill) {
      if (repository) autoKillOnBreakerOpen({ clients: [...upstreamClients], flags: repository, logger });
      else logger.warn(`AUTO_KILL needs writable flags; with ${provider.kind} it does nothing`);
    }

    let shuttingDown = false;
    const readiness = () => (shuttingDown ? { ready: false, detail: 'shutting down' } : flagsReadiness());
    // The launch-control page is themed like the feed: the `theme` flag, for a context of its own.
    const adminTheme = () => flags.getStringValue(THEME, flagCatalog[THEME]!.safeDefault as string, { targetingKey: 'launch-control' });
    const adminState = createAdminState({ provider, repository, readiness: flagsReadiness, upstream: upstreamClients, metrics, theme: adminTheme });

    // Socket.IO, then the app (which shows its count of browsers), then the HTTP server serving both.
    const realtime = createRealtime({
      provider,
      metrics,
      logger,
      adminState,
      redisUrl: config.redisUrl,
      refetchPolicy: createRefetchPolicy(pacer),
      adminAccess: { authorize: access.socketPrincipal, isCurrent: registry.isCurrent, onChange: registry.onChange, onSessionsEnded: sessions.onEnded },
      maxSocketsPerAddress: config.maxSocketsPerAddress,
      now,
    });
    for (const upstreamClient of upstreamClients) upstreamClient.onBreakerStateChange(() => realtime.announceAdminState());

    const app = createApp({
      logger,
      metrics,
      buildFeed: createFeedBuilder({ flags, avatars, recommendations, pacer, renderCost, metrics }),
      flagsApi: {
        provider,
        repository,
        access,
        rateLimitPerMin: config.apiRateLimitPerMin,
        logger,
        contextFor: (user) => (isValidViewerKey(user) ? evaluationContext(viewerFor(user)) : undefined),
      },
      adminState: () => adminState(realtime.clusterBrowsers()),
      access,
      readiness,
      imageOrigins: avatars.imageOrigins,
      viewCache: !config.development,
      trustProxy: config.trustProxy,
    });

    const httpServer = createServer(app);
    realtime.attach(httpServer, app.get('trust proxy fn') as TrustProxyFn);
    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', (error: NodeJS.ErrnoException) => {
        // A real conflict: one line naming the variable to set, never a stack trace.
        if (error.code === 'EADDRINUSE') reject(new ConfigError(`PORT ${config.port} is in use on ${config.host}: set PORT to a free port (e.g. PORT=${config.port + 2} npm start).`));
        else if (error.code === 'EADDRNOTAVAIL') reject(new ConfigError(`HOST ${config.host} is not an address of this machine: set HOST (e.g. HOST=127.0.0.1).`));
        else reject(error);
      });
      httpServer.listen(config.port, config.host, () => resolve());
    });
    const address = httpServer.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const url = `http://${host}:${address.port}`;

    let closing: Promise<void> | undefined;
    const close = () =>
      (closing ??= (async () => {
        shuttingDown = true;
        // Browsers first: their transports close and their clients reconnect (to another instance).
        realtime.disconnectAll();
        // Then stop accepting and drain. Keep-alive connections go idle as their last response
        // ends: close them as they do, and all of them once the grace period is over.
        const drained = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        const sweep = setInterval(() => httpServer.closeIdleConnections(), 25);
        httpServer.closeIdleConnections();
        const grace = setTimeout(() => httpServer.closeAllConnections(), config.shutdownGraceMs);
        await realtime.close();
        await drained;
        clearInterval(sweep);
        clearTimeout(grace);
        await cleanup();
        logger.info('stopped');
      })());

    return {
      url,
      port: address.port,
      provider,
      repository,
      metrics,
      realtime,
      simulator,
      upstream: upstreamClients,
      adminToken,
      adminTokenGenerated,
      logger,
      isReady: () => readiness().ready,
      close,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
