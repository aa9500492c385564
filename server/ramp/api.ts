import express, { Router, type RequestHandler } from 'express';
import { authenticatedOf, type Access } from '../access/auth.js';
import { NotFoundError, ReadOnlyError, UnsupportedMediaTypeError } from '../errors.js';
import { actorOf } from '../flags/api.js';
import { RAMP_PATH } from '../../protocol/ramp.js';
import type { RampDriver } from './driver.js';
import { parseRampSettings } from './plan.js';

export interface RampApiDeps {
  /** Absent when the flags are read-only here (LaunchDarkly): a ramp answers 405. */
  driver: RampDriver | undefined;
  access: Pick<Access, 'requireWriter'>;
  /** Where the flags come from, for the 405's words. */
  sourceKind: string;
}

/** A body, if any, is JSON: settings sent as anything else would be silently ignored. */
const jsonOrNothing: RequestHandler = (req, _res, next) => {
  const hasBody = Number(req.get('content-length') ?? 0) > 0 || req.get('transfer-encoding') !== undefined;
  next(
    !hasBody || req.is('application/json')
      ? undefined
      : new UnsupportedMediaTypeError('Send the settings as application/json.'),
  );
};

/**
 * POST /api/flags/show-avatars-and-reccs/ramp starts a guarded restore (a full token; 202 with the
 * ramp); GET shows the running or the last one (any token). Mounted inside the flags API, behind
 * its write limit and its authentication.
 */
export function createRampApi(deps: RampApiDeps): Router {
  const router = Router();
  const { driver } = deps;
  const readOnly = () =>
    new ReadOnlyError(
      `Flags come from ${deps.sourceKind} and are read-only here; a guarded restore needs flags of our own.`,
    );
  router.get(RAMP_PATH, async (_req, res) => {
    if (!driver) throw readOnly();
    const ramp = await driver.latest();
    if (!ramp) throw new NotFoundError('No guarded restore has run yet.');
    res.json({ ramp });
  });
  router.post(
    RAMP_PATH,
    deps.access.requireWriter,
    jsonOrNothing,
    express.json({ limit: '4kb', strict: false }),
    async (req, res) => {
      if (!driver) throw readOnly();
      const settings = parseRampSettings(req.body);
      const ramp = await driver.begin(settings, actorOf(req, authenticatedOf(res).principal));
      res.status(202).json({ ramp });
    },
  );
  return router;
}
