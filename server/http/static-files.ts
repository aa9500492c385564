import path from 'node:path';
import express, { Router } from 'express';
import { projectRoot, protocolDir, publicDir } from '../paths.js';

/** The pages' files, what they share with the server, and the chart library: all from this server, no CDN. */
export function staticFiles(): Router {
  const router = Router();
  router.use('/static', express.static(publicDir, { maxAge: '5m', index: false }));
  // At the root, so that a page's module (/static/js/feed.js) reaches it as ../../protocol/, as on disk.
  router.use('/protocol', express.static(protocolDir, { maxAge: '5m', index: false }));
  // uPlot, ~50 KB, from npm.
  router.use(
    '/static/vendor/uplot',
    express.static(path.join(projectRoot, 'node_modules/uplot/dist'), { maxAge: '1d', index: false }),
  );
  return router;
}
