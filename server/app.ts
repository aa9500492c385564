import express, { type Express } from 'express';
import type { AdminState } from '../protocol/wire.js';
import type { Access } from './access/auth.js';
import { createAdminRoutes } from './admin/routes.js';
import type { TrustProxy } from './config.js';
import { NotFoundError } from './errors.js';
import type { FeedBuilder } from './feed/feed.js';
import { createFeedRoutes } from './feed/routes.js';
import { createFlagsApi, type FlagsApiDeps } from './flags/api.js';
import type { Readiness } from './flags/readiness.js';
import { errorHandler } from './http/error-handler.js';
import { probeRoutes } from './http/probes.js';
import { proxyWarnings } from './http/proxy-warnings.js';
import { requestLog } from './http/request-log.js';
import { securityHeaders } from './http/security-headers.js';
import { staticFiles } from './http/static-files.js';
import type { Logger } from './observability/logger.js';
import type { Metrics } from './observability/metrics.js';
import { viewsDir } from './paths.js';

export interface AppDeps {
  logger: Logger;
  metrics: Metrics;
  buildFeed: FeedBuilder;
  flagsApi: FlagsApiDeps;
  adminState: () => Promise<AdminState>;
  access: Access;
  readiness: () => Readiness;
  /** Where avatar images come from: the only image origins the CSP allows besides our own. */
  imageOrigins: string[];
  /** Compiled templates kept in memory (off only under `npm run dev`, so edits show at once). */
  viewCache: boolean;
  /** Express's `trust proxy` (TRUST_PROXY): which proxies' X-Forwarded-For and X-Forwarded-Proto to believe. */
  trustProxy: TrustProxy;
}

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

  app.use(requestLog(deps.logger));
  app.use(proxyWarnings(deps.logger, deps.trustProxy));
  app.use(securityHeaders(deps.imageOrigins));
  // The API first: a flip's request meets no other router on its way to the push.
  app.use(createFlagsApi(deps.flagsApi));
  app.use(probeRoutes(deps));
  app.use(staticFiles());
  app.use(createFeedRoutes({ buildFeed: deps.buildFeed, metrics: deps.metrics }));
  app.use(createAdminRoutes({ adminState: deps.adminState, access: deps.access }));
  app.use((req, _res, next) => next(new NotFoundError(`Nothing at ${req.method} ${req.path}.`)));
  app.use(errorHandler);
  return app;
}
