import type { RequestHandler, Response } from 'express';
import type { IncomingMessage } from 'node:http';
import { REFETCH_TURN_HEADER } from '../../protocol/wire.js';
import type { Logger } from '../observability/logger.js';

declare module 'node:http' {
  interface IncomingMessage {
    /** The app's logger, for what a handler has to say about its request (the error handler's 500s). */
    log: Logger;
  }
}

const NOT_LOGGED = /^\/(?:healthz|readyz|metrics)$|^\/(?:static|protocol)\//;

function levelOf(res: Response): 'info' | 'warn' | 'error' {
  // A page told to come back on its turn (503 + Refetch-Turn) is pacing at work, not a failure.
  if (res.statusCode === 503 && res.hasHeader(REFETCH_TURN_HEADER)) return 'info';
  return res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info';
}

/** What a line says of the request: pino's standard fields, the secrets among them redacted by the logger. */
const requestFields = (req: IncomingMessage & { originalUrl?: string }, id: number) => ({
  id,
  method: req.method,
  url: req.originalUrl ?? req.url,
  headers: req.headers,
  remoteAddress: req.socket.remoteAddress,
  remotePort: req.socket.remotePort,
});

/**
 * A line per request once its response is finished (or its connection closed first), at the level
 * its status says; probes and files left out. Nothing is serialized or redacted before then: a
 * flip's push waits for everything that runs ahead of its handler. The level can change live (the
 * log-level flag), so it is asked on each request.
 */
export function requestLog(logger: Logger): RequestHandler {
  let lastId = 0;
  return (req, res, next) => {
    req.log = logger;
    if (!logger.isLevelEnabled('info') || NOT_LOGGED.test(req.path)) return next();
    const id = ++lastId;
    const startedAt = performance.now();
    const finished = () => {
      res.off('finish', finished).off('close', finished);
      const level = levelOf(res);
      logger[level](
        {
          req: requestFields(req, id),
          res: { statusCode: res.statusCode, headers: res.getHeaders() },
          responseTime: Math.round(performance.now() - startedAt),
        },
        res.writableFinished ? (level === 'error' ? 'request errored' : 'request completed') : 'request aborted',
      );
    };
    res.on('finish', finished).on('close', finished);
    next();
  };
}
