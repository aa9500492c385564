import type { RequestHandler } from 'express';
import helmet from 'helmet';

/**
 * helmet's headers, with a Content-Security-Policy that lets scripts, styles and connections come
 * from this server alone, and images from it and the avatar service's origins.
 */
export function securityHeaders(imageOrigins: readonly string[]): RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: true,
      directives: {
        'script-src': ["'self'"],
        'img-src': ["'self'", 'data:', ...imageOrigins],
        'connect-src': ["'self'"],
        'style-src': ["'self'"],
        'upgrade-insecure-requests': null,
      },
    },
    // The avatar images come from the third party's origin.
    crossOriginEmbedderPolicy: false,
  });
}
