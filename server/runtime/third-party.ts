import type { Config } from '../config.js';
import type { Logger } from '../observability/logger.js';
import { startSimulator, type Simulator } from '../simulator/simulator.js';
import type { Closers } from './closers.js';

export interface ThirdParty {
  avatarApiUrl: string;
  recommendationsApiUrl: string;
  /** The built-in third party, when no URL was given for one of the services. */
  simulator: Simulator | undefined;
}

/**
 * The third party: the URLs given, or the built-in simulator on SIMULATOR_PORT. When that port is
 * taken (a second instance on this machine has its simulator there), one of this instance's own
 * elsewhere, so that no instance depends on another one staying up.
 */
export async function startThirdParty(config: Config, logger: Logger, closers: Closers): Promise<ThirdParty> {
  const { avatarApiUrl, recommendationsApiUrl } = config;
  if (avatarApiUrl && recommendationsApiUrl) return { avatarApiUrl, recommendationsApiUrl, simulator: undefined };
  const knobs = { latencyMs: config.simulator.latencyMs, errorRate: config.simulator.errorRate };
  let simulator: Simulator;
  try {
    simulator = await startSimulator({ port: config.simulator.port, host: config.host, knobs });
    logger.info({ origin: simulator.origin }, 'built-in third-party simulator started');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    simulator = await startSimulator({ port: 0, host: config.host, knobs });
    logger.info(
      { origin: simulator.origin, taken: config.simulator.port },
      `SIMULATOR_PORT ${config.simulator.port} is in use (another instance's simulator?): this instance's built-in simulator runs on ${simulator.origin}`,
    );
  }
  closers.add('simulator', () => simulator.close());
  return {
    avatarApiUrl: avatarApiUrl ?? simulator.avatarApiUrl,
    recommendationsApiUrl: recommendationsApiUrl ?? simulator.recommendationsApiUrl,
    simulator,
  };
}
