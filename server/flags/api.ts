import express, { Router, type Request, type RequestHandler } from 'express';
import { RateLimiterRes } from 'rate-limiter-flexible';
import { authenticatedOf, limiterPerAddress, secondsUntil, type Access } from '../access/auth.js';
import type { Principal } from '../access/tokens.js';
import { BadRequestError, NotFoundError, ReadOnlyError, UnsupportedMediaTypeError } from '../errors.js';
import type { EvaluationContext } from '@openfeature/server-sdk';
import { flipStep } from '../observability/flip-trace.js';
import { actorNoteOf } from './actor-note.js';
import { flagCatalog } from './catalog.js';
import { explainFlags } from './explain.js';
import { MAX_FLAG_DEPTH, nestsDeeperThan } from './json-depth.js';
import { applyMergePatch } from './merge-patch.js';
import type { FlagsProvider } from './provider.js';
import type { FlagRepository } from './repository.js';
import type { Actor, ChangeSource, FlagDefinition, FlagRecord } from './types.js';
import { flagType, validateFlagDefinition } from './validate.js';

export const PATCH_CONTENT_TYPES = ['application/json', 'application/merge-patch+json'];
const SOURCES_A_CALLER_MAY_CLAIM: ChangeSource[] = ['admin', 'cli', 'api'];

export interface FlagsApiDeps {
  provider: FlagsProvider;
  /** Absent when the flags are read-only here (LaunchDarkly): writes answer 405. */
  repository: FlagRepository | undefined;
  /** Who may read (any valid token or admin session) and who may write (a full one). */
  access: Pick<Access, 'authenticate' | 'requireWriter'>;
  rateLimitPerMin: number;
  /** The evaluation context of a viewer key, or undefined for a key that is not valid. */
  contextFor: (user: string) => EvaluationContext | undefined;
  /** More routes under /api, authenticated and limited as these are. */
  routes?: Router;
}

/**
 * If-Match (RFC 9110 13.1.1): `*`, or a list of entity-tags. Undefined for `*` or no header (no
 * precondition on the version); otherwise the versions it names. Entity-tags are opaque: one
 * that is well formed but names no version of ours ("-1", "abc") simply never matches, and a weak
 * one never matches either (If-Match compares strongly). 400 only for a header that is not an
 * entity-tag list.
 */
export function parseIfMatch(header: string | undefined): number[] | undefined {
  if (header === undefined || header.trim() === '*') return undefined;
  const versions: number[] = [];
  const element = /[\t ]*(?:(W\/)?"([\x21\x23-\x7e\x80-\xff]*)")?[\t ]*(,|$)/y;
  let tags = 0;
  for (let at = 0; at < header.length || tags === 0;) {
    element.lastIndex = at;
    const match = element.exec(header);
    if (!match || match[0] === '')
      throw new BadRequestError('If-Match must be "*" or a list of entity-tags, e.g. If-Match: "3"', {
        field: 'If-Match',
      });
    if (match[2] !== undefined) {
      tags++;
      if (!match[1] && /^\d{1,15}$/.test(match[2])) versions.push(Number(match[2]));
    }
    at = element.lastIndex;
    if (match[3] === '') break;
  }
  if (tags === 0)
    throw new BadRequestError('If-Match must be "*" or a list of entity-tags, e.g. If-Match: "3"', {
      field: 'If-Match',
    });
  return versions;
}

/**
 * Who is writing: the name of the token that authenticated the request. What the caller says of
 * itself (X-Actor: "Maya, on call", or `UTF-8''%C5%81ukasz` for text a header cannot carry as
 * is: actor-note.ts) is kept as a note beside it, never in its place.
 */
export function actorOf(req: Request, principal: Principal): Actor {
  const claimed = req.get('x-change-source') as ChangeSource | undefined;
  const note = actorNoteOf(req.get('x-actor'));
  return {
    source: claimed && SOURCES_A_CALLER_MAY_CLAIM.includes(claimed) ? claimed : 'api',
    name: principal.name,
    ...(note && note !== principal.name ? { note } : {}),
    address: req.ip,
  };
}

function sendRecord(res: express.Response, record: FlagRecord) {
  res.set('ETag', `"${record.version}"`).json(record);
}

/**
 * Writes per client address per minute (IPv6 by /56): over the limit, 429 with Retry-After, before
 * anything else (a flood of bad tokens included). The headers are IETF draft 7's (RateLimit,
 * RateLimit-Policy). Counted in this instance's memory, as few steps as can be: it runs ahead of
 * every flip, and a flip's push waits for it.
 */
export function writeLimit(perMinute: number): RequestHandler {
  const limiter = limiterPerAddress({
    points: perMinute,
    windowSeconds: 60,
    keyPrefix: 'killswitch:writes',
    redis: undefined,
  });
  const policy = `${perMinute};w=60`;
  return (req, res, next) => {
    limiter.consume(req.ip ?? 'unknown').then(
      (state) => {
        res.set('RateLimit-Policy', policy);
        res.set(
          'RateLimit',
          `limit=${perMinute}, remaining=${state.remainingPoints}, reset=${secondsUntil(state.msBeforeNext)}`,
        );
        next();
      },
      (refusal: unknown) => {
        if (!(refusal instanceof RateLimiterRes)) return next(refusal);
        const retryAfter = secondsUntil(refusal.msBeforeNext);
        res
          .status(429)
          .set('RateLimit-Policy', policy)
          .set('RateLimit', `limit=${perMinute}, remaining=0, reset=${retryAfter}`)
          .set('Retry-After', String(retryAfter))
          .json({
            error: 'rate_limited',
            message: `Too many writes: at most ${perMinute} a minute from one address. Retry after ${retryAfter} s.`,
          });
      },
    );
  };
}

const requirePatchContentType: RequestHandler = (req, _res, next) => {
  next(
    req.is(PATCH_CONTENT_TYPES)
      ? undefined
      : new UnsupportedMediaTypeError(`Send the patch as ${PATCH_CONTENT_TYPES.join(' or ')}.`),
  );
};

/**
 * PATCH /api/flags/:key: a JSON Merge Patch over the flag's flagd definition, applied in the
 * flag's turn (If-Match compared there too), the result held to flagd's schema and semantics and
 * to the type the app's code reads the flag as.
 */
function patchFlag(repository: FlagRepository | undefined, kind: string): RequestHandler {
  return async (req, res) => {
    if (!repository)
      throw new ReadOnlyError(`Flags come from ${kind} and are read-only here; change them at the source.`);
    flipStep('handler (limit, token, body parsed)');
    const key = req.params.key as string;
    if (req.body === undefined) throw new BadRequestError('The body must be a JSON Merge Patch object.');
    // Before anything walks it: the merge, zod and flagd's compiler all recurse.
    if (nestsDeeperThan(req.body, MAX_FLAG_DEPTH))
      throw new BadRequestError(`The body nests deeper than ${MAX_FLAG_DEPTH} levels, the limit for a flag.`, {
        field: '',
      });
    const ifMatch = parseIfMatch(req.get('if-match'));
    const typeOf = (current: FlagDefinition) =>
      Object.hasOwn(flagCatalog, key) ? flagCatalog[key]!.type : flagType(current);
    const record = await repository.update(
      key,
      (current) =>
        validateFlagDefinition(
          key,
          applyMergePatch(current, req.body),
          typeOf(current),
          repository.document().$evaluators,
        ),
      {
        ifMatch,
        actor: actorOf(req, authenticatedOf(res).principal),
      },
    );
    sendRecord(res, record);
  };
}

/**
 * GET /api/flags, GET /api/flags/:key, PATCH /api/flags/:key, GET /api/explain and GET /api/audit.
 * Nothing here is public: targeting lists people, and the audit says who flipped from where.
 * Every route needs a valid token (or the admin page's session); writes need a full one, and are
 * rate limited per client address.
 */
export function createFlagsApi(deps: FlagsApiDeps): Router {
  const router = Router();
  const { provider, repository } = deps;
  const limit = writeLimit(deps.rateLimitPerMin);
  const json = express.json({ type: PATCH_CONTENT_TYPES, limit: '16kb', strict: false });
  // A flip's route first, carrying the whole chain the other routes get below (limit, token):
  // cold, each layer a request passes costs it tens of microseconds before its push.
  router.patch(
    '/api/flags/:key',
    limit,
    deps.access.authenticate,
    deps.access.requireWriter,
    requirePatchContentType,
    json,
    patchFlag(repository, provider.kind),
  );
  router.patch('/api/*path', limit);
  router.post('/api/*path', limit);
  router.use('/api', deps.access.authenticate);
  // Behind the same limit and the same authentication: the guarded restore (ramp/api.ts).
  if (deps.routes) router.use(deps.routes);

  router.get('/api/flags', (_req, res) => {
    res.json({ flags: repository?.list() ?? [] });
  });
  router.get('/api/flags/:key', (req, res) => {
    const record = repository?.get(req.params.key);
    if (!record) throw new NotFoundError(`Unknown flag "${req.params.key}".`);
    sendRecord(res, record);
  });

  /** Every flag the app uses, as one viewer gets it, with the reason (STATIC, TARGETING_MATCH, SPLIT, DISABLED...). */
  router.get('/api/explain', async (req, res) => {
    const user = typeof req.query.user === 'string' ? req.query.user : '';
    const context = deps.contextFor(user);
    if (!context)
      throw new BadRequestError('user must be a viewer key, e.g. /api/explain?user=maya', { field: 'user' });
    res.json({ user, context, flags: await explainFlags({ provider, repository }, context) });
  });
  router.get('/api/audit', (req, res) => {
    const limit = Math.min(Math.max(Number(req.query.limit) || 50, 1), 500);
    res.json({ entries: repository?.audit.recent(limit) ?? [] });
  });
  return router;
}
