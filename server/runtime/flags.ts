import { randomUUID } from 'node:crypto';
import type { LDOptions } from '@launchdarkly/node-server-sdk';
import { OpenFeature, type Client } from '@openfeature/server-sdk';
import type { Config } from '../config.js';
import { FileBackend } from '../flags/backend-file.js';
import { RedisBackend } from '../flags/backend-redis.js';
import { defaultFlagDocument } from '../flags/catalog.js';
import { createLaunchDarklyProvider } from '../flags/launchdarkly.js';
import { followLogLevelFlag } from '../flags/log-level-flag.js';
import { FlagRepositoryProvider, type FlagsProvider } from '../flags/provider.js';
import { followReadiness, sourceName, type Readiness } from '../flags/readiness.js';
import { FlagRepository } from '../flags/repository.js';
import type { Logger } from '../observability/logger.js';
import type { Closers } from './closers.js';

export interface Flags {
  /** Evaluates the flags and tells of their changes (the repository's, or LaunchDarkly's). */
  provider: FlagsProvider;
  /** The flags, when they are ours to change (absent with LaunchDarkly). */
  repository: FlagRepository | undefined;
  /** OpenFeature's client: the app's one evaluation API for pages. */
  client: Client;
  readiness: () => Readiness;
}

/** The flags' source: LaunchDarkly's (read-only here), or ours, in Redis or the file, through one repository. */
async function flagSource(config: Config, logger: Logger, launchDarkly: LDOptions | undefined, closers: Closers) {
  if (config.launchDarklySdkKey) {
    const provider = createLaunchDarklyProvider({
      sdkKey: config.launchDarklySdkKey,
      logger,
      initTimeoutMs: config.launchDarklyInitTimeoutMs,
      sdkOptions: {
        // Only what is set: an unset endpoint is LaunchDarkly's own.
        ...Object.fromEntries(Object.entries(config.launchDarklyEndpoints).filter(([, uri]) => uri !== undefined)),
        ...launchDarkly,
      },
    });
    return { provider, repository: undefined };
  }
  const backend = config.redisUrl
    ? new RedisBackend({ url: config.redisUrl, logger, connectTimeoutMs: config.redisConnectTimeoutMs })
    : new FileBackend({ file: config.flagsFile, logger: logger.child({ component: 'flag-file' }) });
  const repository = new FlagRepository(backend, logger.child({ component: 'flags' }), defaultFlagDocument);
  await repository.start();
  closers.add('flag repository', () => repository.close());
  return { provider: new FlagRepositoryProvider(repository, logger), repository };
}

/**
 * The flags, served through OpenFeature under a domain of this app's own (OpenFeature's API is
 * global, and the tests run several apps in one process). A source that could not load serves
 * the safe defaults: readiness says why, and the provider tells OpenFeature when it is ready.
 */
export async function startFlags(
  config: Config,
  logger: Logger,
  launchDarkly: LDOptions | undefined,
  closers: Closers,
): Promise<Flags> {
  const { provider, repository } = await flagSource(config, logger, launchDarkly, closers);
  const domain = `killswitch-${randomUUID()}`;
  const client = OpenFeature.getClient(domain);
  const readiness = followReadiness(client, sourceName(provider.kind));
  await OpenFeature.setProviderAndWait(domain, provider).catch(() => undefined);
  closers.add('flag provider', () => provider.onClose?.());
  closers.add('log level', followLogLevelFlag(provider, logger, config.logLevel));
  return { provider, repository, client, readiness };
}
