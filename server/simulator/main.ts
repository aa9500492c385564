/**
 * `npm run simulator`: the third-party simulator on its own, e.g. to point several app
 * instances at one third party (AVATAR_API_URL / RECOMMENDATIONS_API_URL). Knobs at run time,
 * from this machine only, as JSON (no other site's page can set them):
 *   curl -X POST localhost:3001/_sim/knobs -H 'content-type: application/json' -d '{"mode":"fail"}'
 *   (modes normal|fail|hang|garbage|slow; also latencyMs, errorRate). GET /_sim shows them.
 */
import { ConfigError, loadConfig } from '../config.js';
import { createLogger } from '../observability/logger.js';
import { startSimulator } from './simulator.js';

try {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  const simulator = await startSimulator({
    port: config.simulator.port,
    host: config.host,
    knobs: { latencyMs: config.simulator.latencyMs, errorRate: config.simulator.errorRate },
  });
  logger.info(
    { avatars: simulator.avatarApiUrl, recommendations: simulator.recommendationsApiUrl },
    `third-party simulator listening on ${simulator.origin} (knobs: GET ${simulator.origin}/_sim, POST JSON from this machine to ${simulator.origin}/_sim/knobs)`,
  );
  const stop = () => void simulator.close().then(() => process.exit(0));
  process.once('SIGINT', stop).once('SIGTERM', stop);
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
}
