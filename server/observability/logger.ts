import { pino, type Logger, type LevelWithSilent } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/**
 * Structured JSON logs. Secrets never reach a log line: the Authorization, Cookie, X-CSRF-Token
 * and Set-Cookie headers and any field named token are redacted wherever they appear.
 */
export function createLogger(level: LevelWithSilent, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { app: 'killswitch' },
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'req.headers["x-csrf-token"]',
          'res.headers["set-cookie"]',
          '*.token',
          'token',
          'adminToken',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}

/**
 * Where the process's logs go: JSON lines on stdout, for a log shipper; in a terminal, the same
 * lines made readable (pino-pretty, in this thread and synchronously, so that the last line before
 * an exit is never lost).
 */
export function logDestination(stream: NodeJS.WriteStream = process.stdout): pino.DestinationStream | undefined {
  if (!stream.isTTY) return undefined;
  return pretty({
    destination: stream,
    sync: true,
    colorize: stream.hasColors?.() ?? false,
    translateTime: 'SYS:HH:MM:ss',
    ignore: 'pid,hostname,app',
    singleLine: true,
  });
}
