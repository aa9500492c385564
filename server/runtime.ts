import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OpenFeature } from '@openfeature/server-sdk';
import { createAdminState } from './admin/routes.js';
import { createApp } from './app.js';
import type { Config } from './config.js';
import { createFeedBuilder, createRefetchWindow } from './feed/feed.js';
import { evaluationContext, isValidViewerKey, viewerFor } from './feed/viewer.js';
import type { LDOptions } from '@launchdarkly/node-server-sdk';
import { FileAuditLog } from './flags/audit.js';
import { createLaunchDarklySource } from './flags/launchdarkly.js';
import type { FlagSource } from './flags/source.js';
import { createStoreFlagSource } from './flags/source.js';
import { storeFiles } from './flags/store.js';
import { FileFlagStore } from './flags/store-file.js';
import { RedisFlagStore } from './flags/store-redis.js';
import type { AuditReader } from './flags/audit.js';
import { resolveAdminToken, tokenMatcher } from './flags/token.js';
import type { Logger } from './observability/logger.js';
import { followLogLevelFlag } from './observability/log-level.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { createRealtime, type Realtime } from './realtime/sockets.js';
import { autoKillOnBreakerOpen } from './upstream/auto-kill.js';
import { createAvatarService } from './upstream/avatars.js';
import { createUpstreamClient, type UpstreamClient } from './upstream/client.js';
import { createPacer } from './upstream/pacing.js';
import { createRecommendationService } from './upstream/recommendations.js';
import { startSimulator, type Simulator } from './upstream/simulator.js';

export interface RunningApp {
  url: string;
  port: number;
  source: FlagSource;
  metrics: Metrics;
  realtime: Realtime;
  /** The third-party clients (avatars, recommendations): their breakers and capacity. */
  upstream: readonly UpstreamClient[];
  /** The built-in third party, when the app started one. */
  simulator: Simulator | undefined;
  adminToken: string;
  logger: Logger;
  isReady(): boolean;
  /** Graceful: not ready, browsers told to reconnect, requests drained, store and audit flushed. */
  close(): Promise<void>;
}

/**
 * The composition root: config -> third party -> audit -> store -> provider -> upstream
 * clients -> app -> Socket.IO -> listen. Only here are concrete objects made; everything else
 * gets its dependencies passed in.
 */
export interface StartOptions {
  collectDefaultMetrics?: boolean;
  /** Extra LaunchDarkly SDK options (the tests' TestData data source). */
  launchDarkly?: LDOptions;
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
      simulator = await startSimulator({
        port: config.simulator.port,
        host: config.host,
        knobs: { latencyMs: config.simulator.latencyMs, errorRate: config.simulator.errorRate },
      });
      cleanups.push(() => simulator!.close());
      avatarApiUrl ??= simulator.avatarApiUrl;
      recommendationsApiUrl ??= simulator.recommendationsApiUrl;
      logger.info({ origin: simulator.origin }, 'built-in third-party simulator started');
    }

    const files = storeFiles(config.flagsFile);
    let source: FlagSource;
    let audit: AuditReader | undefined;
    if (config.launchDarklySdkKey) {
      source = createLaunchDarklySource({
        sdkKey: config.launchDarklySdkKey,
        logger,
        initTimeoutMs: config.launchDarklyInitTimeoutMs,
        sdkOptions: options.launchDarkly,
      });
    } else if (config.redisUrl) {
      const store = new RedisFlagStore({ url: config.redisUrl, logger, connectTimeoutMs: config.redisConnectTimeoutMs });
      audit = store.audit;
      source = createStoreFlagSource(store, logger);
    } else {
      const fileAudit = new FileAuditLog(files.audit, logger.child({ component: 'audit' }));
      await fileAudit.load();
      audit = fileAudit;
      const store = new FileFlagStore({ file: config.flagsFile, logger: logger.child({ component: 'flag-store' }), audit: fileAudit });
      source = createStoreFlagSource(store, logger);
      cleanups.push(() => fileAudit.flush());
    }
    await source.start();
    cleanups.push(() => source.close());

    // A domain per app instance: OpenFeature's API is global, and tests run several apps in one process.
    const domain = `killswitch-${randomUUID()}`;
    await OpenFeature.setProviderAndWait(domain, source.provider);
    cleanups.push(async () => source.provider.onClose?.());
    const flags = OpenFeature.getClient(domain);
    const stopFollowingLogLevel = followLogLevelFlag(source, logger, config.logLevel);
    cleanups.push(async () => stopFollowingLogLevel());

    const adminToken = await resolveAdminToken({ configured: config.adminToken, file: files.adminToken, logger });
    const metrics = createMetrics({ collectDefaults: options.collectDefaultMetrics ?? true });
    source.store?.onChange((changes) => {
      for (const change of changes) metrics.flagFlips.inc({ key: change.key, source: change.actor.source });
    });

    const policy = { timeoutMs: config.upstreamTimeoutMs, maxConcurrent: config.upstreamMaxConcurrency };
    const client = (service: 'avatars' | 'recommendations') =>
      createUpstreamClient({ service, policy, metrics, logger: logger.child({ component: `upstream-${service}` }) });
    const upstreamClients = [client('avatars'), client('recommendations')] as const;
    // Live renders are paced by the third party's measured capacity: a restore never stampedes it.
    const pacer = createPacer({ services: upstreamClients, budgetMs: config.upstreamTimeoutMs / 2 });
    const avatars = createAvatarService({ baseUrl: avatarApiUrl, client: upstreamClients[0], logger });
    const recommendations = createRecommendationService({
      baseUrl: recommendationsApiUrl,
      client: upstreamClients[1],
      logger,
      ttlMs: config.recommendationsCacheTtlMs,
    });
    if (config.autoKill) {
      if (source.store) autoKillOnBreakerOpen({ clients: [...upstreamClients], store: source.store, logger });
      else logger.warn(`AUTO_KILL needs writable flags; with ${source.kind} it does nothing`);
    }

    let shuttingDown = false;
    const readiness = () =>
      shuttingDown ? { ready: false, detail: 'shutting down' } : source.readiness();
    let realtime: Realtime | undefined;
    const adminState = createAdminState(source, audit, upstreamClients, metrics);

    const app = createApp({
      logger,
      metrics,
      buildFeed: createFeedBuilder({ flags, avatars, recommendations, pacer, metrics }),
      flagsApi: {
        source,
        audit,
        isAdminToken: tokenMatcher(adminToken),
        rateLimitPerMin: config.apiRateLimitPerMin,
        contextFor: (user) => (isValidViewerKey(user) ? evaluationContext(viewerFor(user)) : undefined),
      },
      adminState: () => adminState(realtime?.clusterBrowsers() ?? 0),
      readiness,
      imageOrigins: avatars.imageOrigins,
      viewCache: !config.development,
    });

    const httpServer = createServer(app);
    realtime = createRealtime({
      httpServer,
      source,
      metrics,
      logger,
      adminState,
      redisUrl: config.redisUrl,
      refetchWindow: createRefetchWindow(pacer),
    });
    for (const upstreamClient of upstreamClients) upstreamClient.onBreakerStateChange(() => realtime?.announceAdminState());
    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen(config.port, config.host, () => resolve());
    });
    const address = httpServer.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const url = `http://${host}:${address.port}`;
    const live = realtime;

    let closing: Promise<void> | undefined;
    const close = () =>
      (closing ??= (async () => {
        shuttingDown = true;
        // Browsers first: their transports close and their clients reconnect (to another instance).
        live.disconnectAll();
        // Then stop accepting and drain. Keep-alive connections go idle as their last response
        // ends: close them as they do, and all of them once the grace period is over.
        const drained = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        const sweep = setInterval(() => httpServer.closeIdleConnections(), 25);
        httpServer.closeIdleConnections();
        const grace = setTimeout(() => httpServer.closeAllConnections(), config.shutdownGraceMs);
        await live.close();
        await drained;
        clearInterval(sweep);
        clearTimeout(grace);
        await cleanup();
        logger.info('stopped');
      })());

    return {
      url,
      port: address.port,
      source,
      metrics,
      realtime,
      simulator,
      upstream: upstreamClients,
      adminToken,
      logger,
      isReady: () => readiness().ready,
      close,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
