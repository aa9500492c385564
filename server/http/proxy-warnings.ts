import type { RequestHandler } from 'express';
import type { TrustProxy } from '../config.js';
import type { Logger } from '../observability/logger.js';

/**
 * The two ways `trust proxy` (TRUST_PROXY) is commonly wrong, each said once in the log: `true`
 * believes any X-Forwarded-For, so a client can claim any address and every limit per address is
 * void; unset behind a proxy, X-Forwarded-For arrives and is ignored, so every client counts as
 * the proxy's one address.
 */
export function proxyWarnings(logger: Logger, trustProxy: TrustProxy): RequestHandler {
  if (trustProxy === true)
    logger.warn(
      { code: 'permissive_trust_proxy' },
      "TRUST_PROXY=true believes any X-Forwarded-For: a client can claim any address and escape every limit per address. Set it to the proxies' addresses or their number.",
    );
  let warned = trustProxy !== false;
  return (req, _res, next) => {
    if (!warned && req.headers['x-forwarded-for'] !== undefined) {
      warned = true;
      logger.warn(
        { code: 'untrusted_forwarded_for', forwardedFor: req.headers['x-forwarded-for'] },
        "A request carried X-Forwarded-For, but TRUST_PROXY is unset: behind a proxy every client counts as its one address. Set TRUST_PROXY to the proxies' addresses or their number (this is said once).",
      );
    }
    next();
  };
}
