import { pino, type Logger, type LevelWithSilent } from 'pino';

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
