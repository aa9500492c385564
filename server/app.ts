import express, { type ErrorRequestHandler, type Express } from 'express';
import helmet from 'helmet';
import { pinoHttp } from 'pino-http';
import type { Access } from './access/auth.js';
import type { TrustProxy } from './config.js';
import { createAdminRoutes } from './admin/routes.js';
import { HttpError, NotFoundError, TooManyFailuresError } from './errors.js';
import { createFlagsApi, type FlagsApiDeps } from './flags/api.js';
import { createFeedRoutes, REFETCH_TURN_HEADER } from './feed/routes.js';
import type { FeedBuilder } from './feed/feed.js';
import type { Logger } from './observability/logger.js';
import type { Metrics } from './observability/metrics.js';
import path from 'node:path';
import { projectRoot, protocolDir, publicDir, viewsDir } from './paths.js';
import type { AdminState } from './realtime/events.js';

export interface AppDeps {
  logger: Logger;
  metrics: Metrics;
  buildFeed: FeedBuilder;
  flagsApi: FlagsApiDeps;
  adminState: () => Promise<AdminState>;
  access: Access;
  readiness: () => { ready: boolean; detail: string };
  /** Where avatar images come from: the only image origins the CSP allows besides our own. */
  imageOrigins: string[];
  /** Compiled templates kept in memory (off only under `npm run dev`, so edits show at once). */
  viewCache: boolean;
  /** Express's `trust proxy` (TRUST_PROXY): which proxies' X-Forwarded-For and X-Forwarded-Proto to believe. */
  trustProxy: TrustProxy;
}

/** Body-parser errors carry a `type`; each one is the client's fault, and says so. */
const BODY_ERRORS: Record<string, [number, string]> = {
  'entity.parse.failed': [400, 'The body is not valid JSON.'],
  'entity.too.large': [413, 'The body is too large (16 KB at most).'],
  'encoding.unsupported': [415, 'Unsupported content encoding.'],
  'charset.unsupported': [415, 'Unsupported charset; send UTF-8.'],
  'request.aborted': [400, 'The request was aborted.'],
};

/** The Express app. No side effects: nothing listens, nothing starts, until the runtime says so. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('views', viewsDir);
  app.set('view engine', 'ejs');
  app.set('etag', false);
  // Express turns this on only when NODE_ENV=production; without it every render recompiles the EJS.
  app.set('view cache', deps.viewCache);
  // req.ip (every limit per address) and req.secure (Secure cookies) behind a load balancer. The
  // Socket.IO handshakes use the function Express compiles from it (`trust proxy fn`).
  app.set('trust proxy', deps.trustProxy);

  const requestLogger = pinoHttp({
    logger: deps.logger,
    autoLogging: { ignore: (req) => ['/healthz', '/readyz', '/metrics'].includes(req.url ?? '') || /^\/(static|protocol)\//.test(req.url ?? '') },
    customLogLevel: (_req, res, error) => {
      // A page told to come back on its turn (503 + Refetch-Turn) is pacing at work, not a failure.
      if (res.statusCode === 503 && res.hasHeader(REFETCH_TURN_HEADER)) return 'info';
      return error || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info';
    },
  });
  // Request logs cost a child logger and hooks per request: none when nobody will see them
  // (the level can change live, through the log-level flag, so it is asked on each request).
  app.use((req, res, next) => {
    if (deps.logger.isLevelEnabled('info')) return requestLogger(req, res, next);
    req.log = deps.logger;
    next();
  });
  app.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: true,
        directives: {
          'script-src': ["'self'"],
          'img-src': ["'self'", 'data:', ...deps.imageOrigins],
          'connect-src': ["'self'"],
          'style-src': ["'self'"],
          'upgrade-insecure-requests': null,
        },
      },
      // The avatar images come from the third party's origin.
      crossOriginEmbedderPolicy: false,
    }),
  );

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const readiness = deps.readiness();
    res.status(readiness.ready ? 200 : 503).json({ status: readiness.ready ? 'ready' : 'not ready', detail: readiness.detail });
  });
  app.get('/metrics', async (_req, res) => {
    res.set('Content-Type', deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  app.use('/static', express.static(publicDir, { maxAge: '5m', index: false }));
  // At the root, so that a page's module (/static/js/feed.js) reaches it as ../../protocol/, as on disk.
  app.use('/protocol', express.static(protocolDir, { maxAge: '5m', index: false }));
  // The chart library, from npm, served by us (no CDN): uPlot, ~50 KB.
  app.use('/static/vendor/uplot', express.static(path.join(projectRoot, 'node_modules/uplot/dist'), { maxAge: '1d', index: false }));
  app.use(createFeedRoutes({ buildFeed: deps.buildFeed, metrics: deps.metrics }));
  app.use(createAdminRoutes({ adminState: deps.adminState, access: deps.access }));
  app.use(createFlagsApi(deps.flagsApi));

  app.use((req, _res, next) => next(new NotFoundError(`Nothing at ${req.method} ${req.path}.`)));

  const errorHandler: ErrorRequestHandler = (error, req, res, _next) => {
    let status = 500;
    let body: Record<string, unknown> = { error: 'internal', message: 'Something went wrong on our side.' };
    if (error instanceof HttpError) {
      status = error.status;
      body = { error: error.code, message: error.message, ...error.details };
    } else if (typeof error?.type === 'string' && BODY_ERRORS[error.type]) {
      const [bodyStatus, message] = BODY_ERRORS[error.type]!;
      status = bodyStatus;
      body = { error: error.type, message };
    } else if (error instanceof URIError || (Number(error?.status) >= 400 && Number(error?.status) < 500)) {
      // Express's own client errors, e.g. a path that is not valid percent-encoding ("/api/flags/%").
      status = error instanceof URIError ? 400 : Number(error.status);
      body = { error: 'bad_request', message: `The request is malformed: ${String(error.message).slice(0, 200)}` };
    } else {
      req.log.error({ err: error }, 'unhandled error');
    }
    if (res.headersSent) return;
    res.status(status);
    if (error instanceof TooManyFailuresError) res.set('Retry-After', String(error.retryAfterSeconds));
    if (!req.path.startsWith('/api') && req.accepts(['json', 'html']) === 'html') {
      res.render('error', { status, message: body.message });
    } else {
      res.json(body);
    }
  };
  app.use(errorHandler);
  return app;
}
