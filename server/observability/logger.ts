import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * Structured JSON logs. Secrets never reach a log line: the Authorization header and any
 * field named token are redacted wherever they appear.
 */
export function createLogger(level: LevelWithSilent, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { app: 'killswitch' },
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', '*.token', 'token', 'adminToken'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
