import { Router } from 'express';
import type { Readiness } from '../flags/readiness.js';
import type { Metrics } from '../observability/metrics.js';

/** /healthz (the process lives), /readyz (the flags can be trusted, and not shutting down), /metrics (Prometheus). */
export function probeRoutes(deps: { readiness: () => Readiness; metrics: Metrics }): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', (_req, res) => {
    const readiness = deps.readiness();
    res
      .status(readiness.ready ? 200 : 503)
      .json({ status: readiness.ready ? 'ready' : 'not ready', detail: readiness.detail });
  });
  router.get('/metrics', async (_req, res) => {
    res.set('Content-Type', deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  return router;
}
