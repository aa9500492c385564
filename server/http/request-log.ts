import type { RequestHandler } from 'express';
import { pinoHttp } from 'pino-http';
import { REFETCH_TURN_HEADER } from '../../protocol/wire.js';
import type { Logger } from '../observability/logger.js';

/**
 * A log line per request, leaving out probes and files. Request logs cost a child logger and
 * hooks per request: none when nobody will see them (the level can change live, through the
 * log-level flag, so it is asked on each request).
 */
export function requestLog(logger: Logger): RequestHandler {
  const log = pinoHttp({
    logger,
    autoLogging: {
      ignore: (req) =>
        ['/healthz', '/readyz', '/metrics'].includes(req.url ?? '') || /^\/(static|protocol)\//.test(req.url ?? ''),
    },
    customLogLevel: (_req, res, error) => {
      // A page told to come back on its turn (503 + Refetch-Turn) is pacing at work, not a failure.
      if (res.statusCode === 503 && res.hasHeader(REFETCH_TURN_HEADER)) return 'info';
      return error || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info';
    },
  });
  return (req, res, next) => {
    if (logger.isLevelEnabled('info')) return log(req, res, next);
    req.log = logger;
    next();
  };
}
