/**
 * `npm start`: read the environment, start the app, stop gracefully on SIGTERM or SIGINT.
 * A bad variable stops the start with one line naming it.
 */
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './observability/logger.js';
import { startApp } from './runtime.js';

let config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(1);
  }
  throw error;
}

const logger = createLogger(config.logLevel);
try {
  const app = await startApp(config, logger);
  logger.info(
    { url: app.url, flags: app.source.kind, admin: `${app.url}/admin` },
    `feed live at ${app.url}  (launch control: ${app.url}/admin)`,
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop).on('SIGINT', stop);
} catch (error) {
  logger.fatal({ err: error }, `could not start: ${(error as Error).message}`);
  process.exit(1);
}
