import type { LDOptions } from '@launchdarkly/node-server-sdk';
import { createAdminState } from '../admin/routes.js';
import { createApp } from '../app.js';
import type { Config } from '../config.js';
import { createFeedBuilder } from '../feed/feed.js';
import { createRefetchPolicy } from '../feed/refetch-policy.js';
import { evaluationContext, isValidViewerKey, viewerFor } from '../feed/viewer.js';
import { flagCatalog, THEME } from '../flags/catalog.js';
import type { FlagsProvider } from '../flags/provider.js';
import type { Readiness } from '../flags/readiness.js';
import type { FlagRepository } from '../flags/repository.js';
import type { Logger } from '../observability/logger.js';
import { createMetrics, type Metrics } from '../observability/metrics.js';
import { createRampApi } from '../ramp/api.js';
import type { RampDriver } from '../ramp/driver.js';
import { createRealtime, type Realtime } from '../realtime/sockets.js';
import type { UpstreamClient } from '../upstream/client.js';
import type { Simulator } from '../simulator/simulator.js';
import { startAccess, type AccessParts } from './access.js';
import { Closers } from './closers.js';
import { startFlags, type Flags } from './flags.js';
import { startHttp } from './http.js';
import { startRamp } from './ramp.js';
import { startThirdParty } from './third-party.js';
import { startUpstream, type Upstream } from './upstream.js';

export interface RunningApp {
  url: string;
  port: number;
  /** Evaluates the flags and tells of their changes (the repository's, or LaunchDarkly's). */
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

export interface StartOptions {
  collectDefaultMetrics?: boolean;
  /** Extra LaunchDarkly SDK options (the tests' TestData data source). */
  launchDarkly?: LDOptions;
  /** The admin sessions' clock (their expiry): tests move it forward instead of waiting 12 h. */
  now?: () => number;
}

/** Socket.IO: the feed pages' per-viewer pushes and launch control's live channel, with its state. */
function startRealtime(
  config: Config,
  logger: Logger,
  parts: {
    flags: Flags;
    access: AccessParts;
    upstream: Upstream;
    metrics: Metrics;
    readiness: () => Readiness;
    ramp: RampDriver | undefined;
  },
  now: () => number,
) {
  const { flags, access, upstream, metrics } = parts;
  // The launch-control page is themed like the feed: the `theme` flag, for a context of its own.
  const theme = () =>
    flags.client.getStringValue(THEME, flagCatalog[THEME]!.safeDefault as string, { targetingKey: 'launch-control' });
  const adminState = createAdminState({
    ...flags,
    readiness: parts.readiness,
    upstream: upstream.clients,
    metrics,
    theme,
    ramp: () => parts.ramp?.current(),
  });
  const realtime = createRealtime({
    provider: flags.provider,
    metrics,
    logger,
    adminState,
    redisUrl: config.redisUrl,
    refetchPolicy: createRefetchPolicy(upstream.pacer),
    adminAccess: {
      authorize: access.access.socketPrincipal,
      isCurrent: (principal) => access.registry.isCurrent(principal),
      onChange: (listener) => access.registry.onChange(listener),
      onSessionsEnded: (listener) => access.sessions.onEnded(listener),
    },
    maxSocketsPerAddress: config.maxSocketsPerAddress,
    now,
  });
  for (const client of upstream.clients) client.onBreakerStateChange(() => realtime.announceAdminState());
  parts.ramp?.onChange(() => realtime.announceAdminState());
  return { realtime, adminState: () => adminState(realtime.clusterBrowsers()) };
}

/**
 * The composition root, a step at a time: the third party, the flags, who may flip them, the
 * third party's clients and their pacing, the guarded restore, Socket.IO, then HTTP. Only the steps make concrete
 * objects; everything else gets its dependencies passed in. What a step makes that must be closed
 * is closed at the stop, last made first.
 */
export async function startApp(config: Config, logger: Logger, options: StartOptions = {}): Promise<RunningApp> {
  const closers = new Closers();
  const now = options.now ?? Date.now;
  try {
    const thirdParty = await startThirdParty(config, logger, closers);
    const flags = await startFlags(config, logger, options.launchDarkly, closers);
    const metrics = createMetrics({ collectDefaults: options.collectDefaultMetrics ?? true });
    flags.repository?.onChange((changes) =>
      changes.forEach((change) => metrics.flagFlips.inc({ key: change.key, source: change.actor.source })),
    );
    const access = await startAccess(config, logger, now, closers);
    // This instance's part of the cluster's open pages: known once Socket.IO is up, below.
    let pageShare = () => 1;
    const upstream = startUpstream(
      config,
      logger,
      { thirdParty, flags, metrics, pageShare: () => pageShare() },
      closers,
    );
    const ramp = await startRamp(config, logger, { flags, upstream, metrics }, closers);
    let shuttingDown = false;
    const readiness = () => (shuttingDown ? { ready: false, detail: 'shutting down' } : flags.readiness());
    const { realtime, adminState } = startRealtime(
      config,
      logger,
      { flags, access, upstream, metrics, readiness: flags.readiness, ramp },
      now,
    );
    const app = createApp({
      logger,
      metrics,
      buildFeed: createFeedBuilder({ flags: flags.client, ...upstream, metrics }),
      flagsApi: {
        ...flags,
        access: access.access,
        rateLimitPerMin: config.apiRateLimitPerMin,
        contextFor: (user) => (isValidViewerKey(user) ? evaluationContext(viewerFor(user)) : undefined),
        routes: createRampApi({ driver: ramp, access: access.access, sourceKind: flags.provider.kind }),
      },
      adminState,
      access: access.access,
      readiness,
      imageOrigins: upstream.avatars.imageOrigins,
      viewCache: !config.development,
      trustProxy: config.trustProxy,
    });
    pageShare = () => realtime.pusher.browserCount / Math.max(1, realtime.clusterBrowsers());
    const http = await startHttp(config, app, realtime);
    closers.add('http', () => http.drain());
    let closing: Promise<void> | undefined;
    const close = () =>
      (closing ??= (async () => {
        shuttingDown = true;
        const failed = await closers.closeAll();
        if (failed.length > 0) logger.warn({ failed }, 'some parts did not close cleanly');
        logger.info('stopped');
      })());
    const { provider, repository } = flags;
    return {
      url: http.url,
      port: http.port,
      provider,
      repository,
      metrics,
      realtime,
      simulator: thirdParty.simulator,
      upstream: upstream.clients,
      ...access,
      logger,
      isReady: () => readiness().ready,
      close,
    };
  } catch (error) {
    await closers.closeAll();
    throw error;
  }
}
