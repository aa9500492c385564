/**
 * `npm start`: read the environment, start the app, stop gracefully on SIGTERM or SIGINT.
 * A bad variable stops the start with one line naming it.
 */
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger, logDestination } from './observability/logger.js';
import { guardProcess } from './observability/process-guards.js';
import { startApp, type RunningApp } from './runtime/start.js';

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(1);
  }
  throw error;
}

const logger = createLogger(config.logLevel, logDestination());

/** The first start's admin token, framed on the console where nobody misses it (shown this once). */
function adminTokenBanner(token: string, adminUrl: string): string {
  const lines = [
    'Admin token (shown this once; kept in admin-token beside the flag file, mode 0600):',
    '',
    `  ${token}`,
    '',
    `Sign in at ${adminUrl}; \`npm run flag\` reads the file by itself.`,
    'More tokens, named and read-only: npm run token -- create NAME [--read-only]',
  ];
  const width = Math.max(...lines.map((line) => line.length));
  const rule = '━'.repeat(width + 2);
  // In a colour terminal, a bold yellow frame and the token in bold: it stands out of the logs.
  const colour = process.stderr.hasColors?.() ?? false;
  const frame = (text: string) => (colour ? `\x1b[1;33m${text}\x1b[0m` : text);
  const body = (line: string) =>
    colour && line.trim() === token ? `\x1b[1m${line.padEnd(width)}\x1b[0m` : line.padEnd(width);
  return [
    '',
    frame(`┏${rule}┓`),
    ...lines.map((line) => `${frame('┃')} ${body(line)} ${frame('┃')}`),
    frame(`┗${rule}┛`),
    '',
  ].join('\n');
}
let app: RunningApp | undefined;
let stopRequested = false;
let stopping: Promise<void> | undefined;

function shutDown(exitCode = 0): Promise<void> {
  stopping ??= (async () => {
    try {
      await app?.close();
      process.exit(exitCode);
    } catch (error) {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
  })();
  return stopping;
}

guardProcess({
  process,
  logger,
  counted: (fault) => app?.metrics.processFaults.inc({ kind: fault }),
  stop: (exitCode) => {
    // Not started yet, or already stopping: nothing left to drain gracefully.
    if (!app || stopping) process.exit(exitCode);
    void shutDown(exitCode);
  },
});

// Installed before anything starts: a signal during start-up is a graceful stop too, never the
// default action (which kills the process mid-write).
const onSignal = (signal: NodeJS.Signals) => {
  if (stopRequested) {
    logger.warn({ signal }, 'second signal: exiting now');
    process.exit(1);
  }
  stopRequested = true;
  logger.info({ signal }, 'shutting down');
  if (app) void shutDown();
};
process.on('SIGTERM', onSignal).on('SIGINT', onSignal);

try {
  app = await startApp(config, logger);
  logger.info(
    { url: app.url, flags: app.provider.kind, admin: `${app.url}/admin` },
    `feed live at ${app.url}  (launch control: ${app.url}/admin)`,
  );
  if (app.adminTokenGenerated) console.error(adminTokenBanner(app.adminToken, `${app.url}/admin`));
  if (stopRequested) void shutDown();
} catch (error) {
  if (error instanceof ConfigError) console.error(error.message);
  else logger.fatal({ err: error }, `could not start: ${(error as Error).message}`);
  process.exit(1);
}
