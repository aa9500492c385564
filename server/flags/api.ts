import express, { Router, type Request, type RequestHandler } from 'express';
import { rateLimit } from 'express-rate-limit';
import {
  BadRequestError,
  NotFoundError,
  ReadOnlyError,
  UnauthorizedError,
  UnsupportedMediaTypeError,
} from '../errors.js';
import type { EvaluationContext } from '@openfeature/server-sdk';
import type { AuditReader } from './audit.js';
import { explainFlags } from './explain.js';
import { applyMergePatch } from './merge-patch.js';
import type { FlagSource } from './source.js';
import type { Actor, ChangeSource, FlagRecord } from './types.js';
import { flagType, validateFlagDefinition } from './validate.js';

export const PATCH_CONTENT_TYPES = ['application/json', 'application/merge-patch+json'];
const SOURCES_A_CALLER_MAY_CLAIM: ChangeSource[] = ['admin', 'cli', 'api'];

export interface FlagsApiDeps {
  source: FlagSource;
  audit: AuditReader | undefined;
  isAdminToken: (presented: string | undefined) => boolean;
  rateLimitPerMin: number;
  /** The evaluation context of a viewer key, or undefined for a key that is not valid. */
  contextFor: (user: string) => EvaluationContext | undefined;
}

function bearer(req: Request): string | undefined {
  const header = req.get('authorization');
  const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
  return match?.[1];
}

/** `If-Match: "3"` (or W/"3", or 3). `*` asks only that the flag exist. */
export function parseIfMatch(header: string | undefined): number | undefined {
  if (header === undefined || header.trim() === '*') return undefined;
  const match = header.trim().match(/^(?:W\/)?"?(\d{1,15})"?$/);
  if (!match) throw new BadRequestError('If-Match must be a flag version in quotes, e.g. If-Match: "3"', { field: 'If-Match' });
  return Number(match[1]);
}

/** Who is writing: the shared token cannot tell, so callers name themselves (X-Actor). */
function actorOf(req: Request): Actor {
  const claimed = req.get('x-change-source') as ChangeSource | undefined;
  const name = (req.get('x-actor') ?? '').replace(/[\u0000-\u001f\u007f]/g, '').trim().slice(0, 80);
  return {
    source: claimed && SOURCES_A_CALLER_MAY_CLAIM.includes(claimed) ? claimed : 'api',
    name: name || 'anonymous',
    address: req.ip,
  };
}

function sendRecord(res: express.Response, record: FlagRecord) {
  res.set('ETag', `"${record.version}"`).json(record);
}

/**
 * GET /api/flags, GET /api/flags/:key, PATCH /api/flags/:key (JSON Merge Patch over the flagd
 * definition), and GET /api/audit. Reads are open; writes need the admin token and are rate
 * limited per client address.
 */
export function createFlagsApi(deps: FlagsApiDeps): Router {
  const router = Router();
  const { source } = deps;

  const requireToken: RequestHandler = (req, _res, next) => {
    next(deps.isAdminToken(bearer(req)) ? undefined : new UnauthorizedError());
  };

  const writeLimit = rateLimit({
    windowMs: 60_000,
    limit: deps.rateLimitPerMin,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    handler: (_req, res, _next, options) => {
      res.status(options.statusCode).json({
        error: 'rate_limited',
        message: `Too many writes: at most ${deps.rateLimitPerMin} a minute from one address. Retry after ${res.get('Retry-After')} s.`,
      });
    },
  });

  const requirePatchContentType: RequestHandler = (req, _res, next) => {
    next(
      req.is(PATCH_CONTENT_TYPES)
        ? undefined
        : new UnsupportedMediaTypeError(`Send the patch as ${PATCH_CONTENT_TYPES.join(' or ')}.`),
    );
  };

  const list = () => source.store?.list() ?? [];

  router.get('/api/flags', (_req, res) => {
    res.json({ flags: list() });
  });

  router.get('/api/flags/:key', (req, res) => {
    const record = source.store?.get(req.params.key);
    if (!record) throw new NotFoundError(`Unknown flag "${req.params.key}".`);
    sendRecord(res, record);
  });

  router.patch(
    '/api/flags/:key',
    writeLimit,
    requireToken,
    requirePatchContentType,
    express.json({ type: PATCH_CONTENT_TYPES, limit: '16kb', strict: false }),
    async (req, res) => {
      const store = source.store;
      if (!store) {
        throw new ReadOnlyError(`Flags come from ${source.kind} and are read-only here; change them at the source.`);
      }
      const key = req.params.key as string;
      if (req.body === undefined) throw new BadRequestError('The body must be a JSON Merge Patch object.');
      const ifMatch = parseIfMatch(req.get('if-match'));
      const record = await store.update(
        key,
        (current) => validateFlagDefinition(key, applyMergePatch(current, req.body), flagType(current)),
        { ifMatch, actor: actorOf(req) },
      );
      sendRecord(res, record);
    },
  );

  /** Every flag the app uses, as one viewer gets it, with the reason (STATIC, TARGETING_MATCH, SPLIT, DISABLED...). */
  router.get('/api/explain', async (req, res) => {
    const user = typeof req.query.user === 'string' ? req.query.user : '';
    const context = deps.contextFor(user);
    if (!context) throw new BadRequestError('user must be a viewer key, e.g. /api/explain?user=maya', { field: 'user' });
    res.json({ user, context, flags: await explainFlags(source, context) });
  });

  router.get('/api/audit', (req, res) => {
    const limit = Math.min(Math.max(Number(req.query.limit) || 50, 1), 500);
    res.json({ entries: deps.audit?.recent(limit) ?? [] });
  });

  return router;
}
