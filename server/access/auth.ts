import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { parse as parseCookies } from 'cookie';
import type { Request, RequestHandler, Response } from 'express';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { ForbiddenError, TooManyFailuresError, UnauthorizedError } from '../errors.js';
import { addressKey } from './client-address.js';
import { SESSION_COOKIE, sessionKeyOf, type Session, type SessionStore } from './sessions.js';
import type { Principal, TokenRegistry } from './tokens.js';

/** A limit per client address: what it has counted for an address, and one more for it (rejects with the state past the limit). */
export interface AddressLimiter {
  get(address: string): Promise<RateLimiterRes | null>;
  consume(address: string): Promise<RateLimiterRes>;
}

/**
 * A limit per client address in a window, shared by every instance with Redis (kept in memory while
 * Redis is down). It counts by `addressKey`: an IPv6 client by its /56.
 */
export function limiterPerAddress(options: {
  points: number;
  windowSeconds: number;
  keyPrefix: string;
  redis: Redis | undefined;
}): AddressLimiter {
  const settings = { points: options.points, duration: options.windowSeconds, keyPrefix: options.keyPrefix };
  const memory = new RateLimiterMemory(settings);
  const limiter: RateLimiterAbstract = options.redis
    ? new RateLimiterRedis({ ...settings, storeClient: options.redis, insuranceLimiter: memory })
    : memory;
  return {
    get: (address) => limiter.get(addressKey(address)),
    consume: (address) => limiter.consume(addressKey(address)),
  };
}

/** Retry-After: whole seconds, at least one. */
export const secondsUntil = (msBeforeNext: number) => Math.max(1, Math.ceil(msBeforeNext / 1000));

/**
 * Failed authentications per client address: over the limit in the window, every attempt from
 * that address is refused until the window ends, right ones included (a guesser learns nothing).
 * Only a credential that was presented and refused counts; a request with none is not an attempt.
 */
export interface AuthFailures {
  /** Seconds until this address may try again; 0 when it may now. */
  blockedFor(address: string): Promise<number>;
  failed(address: string): Promise<void>;
}

export function createAuthFailures(options: {
  limit: number;
  windowSeconds: number;
  redis?: Redis | undefined;
}): AuthFailures {
  const limiter = limiterPerAddress({
    points: options.limit,
    windowSeconds: options.windowSeconds,
    keyPrefix: 'killswitch:auth-failures',
    redis: options.redis,
  });
  return {
    async blockedFor(address) {
      const state = await limiter.get(address);
      return state && state.consumedPoints >= options.limit ? secondsUntil(state.msBeforeNext) : 0;
    },
    async failed(address) {
      // Rejects once over the limit: that is what blockedFor then reports.
      await limiter.consume(address).catch(() => undefined);
    },
  };
}

/**
 * Successful admin sign-ins per client address: each one is a session kept for hours, so an
 * address may start only so many in the window (a token's own cap bounds what they can end).
 */
export interface SignInLimit {
  /** Counts a sign-in from this address: 0 when it may go ahead, else the seconds until it may. */
  take(address: string): Promise<number>;
}

export function createSignInLimit(options: {
  limit: number;
  windowSeconds: number;
  redis?: Redis | undefined;
}): SignInLimit {
  const limiter = limiterPerAddress({
    points: options.limit,
    windowSeconds: options.windowSeconds,
    keyPrefix: 'killswitch:sign-ins',
    redis: options.redis,
  });
  return {
    take: (address) =>
      limiter.consume(address).then(
        () => 0,
        (refusal: unknown) => {
          if (refusal instanceof RateLimiterRes) return secondsUntil(refusal.msBeforeNext);
          throw refusal;
        },
      ),
  };
}

function bearer(req: Request): string | undefined {
  const match = req.get('authorization')?.match(/^Bearer\s+(\S+)\s*$/i);
  return match?.[1];
}

export function sessionIdFrom(headers: IncomingHttpHeaders): string | undefined {
  return headers.cookie ? parseCookies(headers.cookie)[SESSION_COOKIE] : undefined;
}

/** The session's CSRF token, compared in constant time. */
export const csrfMatches = (session: Session, presented: string | undefined): boolean =>
  presented !== undefined && presented !== '' && sameText(presented, session.csrf);

const sameText = (a: string, b: string) => {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
};

/**
 * Whether a request comes from a page of our own origin. Sec-Fetch-Site first (every current
 * browser sends it; our pages send `Origin: null` on a form POST, as helmet's Referrer-Policy is
 * no-referrer), then Origin; a client that sends neither is not a browser, and not a forged one.
 */
export function fromOwnOrigin(headers: IncomingHttpHeaders, ownOrigin: string): boolean {
  const site = headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin';
  const origin = headers.origin;
  return origin === undefined || origin === ownOrigin;
}

export const ownOriginOf = (req: Request) => `${req.protocol}://${req.get('host')}`;

/** A Socket.IO handshake from a page of our own origin: its Host, over either scheme (the handshake has no `req.protocol`). */
const handshakeFromOwnOrigin = (headers: IncomingHttpHeaders) =>
  headers.host !== undefined &&
  [`http://${headers.host}`, `https://${headers.host}`].some((origin) => fromOwnOrigin(headers, origin));

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** What `authenticate` leaves in `res.locals`. */
export interface Authenticated {
  principal: Principal;
  /** Set when the admin page's session authenticated the request (its writes need the CSRF token). */
  session?: Session;
}

export const authenticatedOf = (res: Response): Authenticated => res.locals as Authenticated;

/** What became of a presented credential's first check (see `checkToken`). */
export type TokenCheck =
  | { outcome: 'blocked'; retryAfterSeconds: number }
  | { outcome: 'none' }
  | { outcome: 'wrong' }
  | { outcome: 'valid'; principal: Principal };

/** The words every refusal of a token uses, whichever way it came (HTTP, sign-in, socket). */
export const TOKEN_REFUSED = 'The token was not accepted: it is wrong, or it was revoked.';
export const blockedText = (seconds: number) =>
  `Too many failed authentications from this address. Try again in ${seconds} s.`;

/** Who an admin socket is, and, when a session opened it, which one and until when. */
export interface SocketCredential {
  principal: Principal;
  session?: { key: string; expiresAt: number };
}

/** A full token: 403 for a read-only one (after `authenticate`). */
const requireWriter: RequestHandler = (_req, res, next) => {
  const { principal } = authenticatedOf(res);
  if (principal.scope !== 'full') {
    throw new ForbiddenError(
      `The token "${principal.name}" is read-only: it reads flags and watches /admin, and cannot change anything.`,
      'read_only_token',
    );
  }
  next();
};

/**
 * The admin page's session a request carries, checked: undefined without a session cookie; 401
 * when it has ended; 403 for a write that is not from our own page or lacks the session's CSRF token.
 */
async function sessionOfRequest(
  req: Request,
  liveSession: (id: string | undefined) => Promise<Session | undefined>,
): Promise<Session | undefined> {
  const id = sessionIdFrom(req.headers);
  if (id === undefined) return undefined;
  const session = await liveSession(id);
  // An ended session is not a guess: not counted as a failure.
  if (!session)
    throw new UnauthorizedError(
      'Your admin session has ended (signed out, expired, or its token revoked): sign in again at /admin.',
    );
  if (!SAFE_METHODS.has(req.method)) {
    // A write carried by the cookie must come from our own page: same origin, and the session's
    // CSRF token in X-CSRF-Token (a page of another site cannot read it).
    if (!fromOwnOrigin(req.headers, ownOriginOf(req)))
      throw new ForbiddenError('Cross-site writes are refused.', 'cross_site');
    if (!csrfMatches(session, req.get('x-csrf-token')))
      throw new ForbiddenError("This write needs the session's X-CSRF-Token.", 'csrf');
  }
  return session;
}

/**
 * Who may do what: a bearer token (any named token, or ADMIN_TOKEN), or the admin page's
 * session cookie. Express middleware for `/api`, and the same check for the admin socket.
 */
export function createAccess(deps: {
  registry: TokenRegistry;
  sessions: SessionStore;
  failures: AuthFailures;
  signIns: SignInLimit;
}) {
  const { registry, sessions, failures, signIns } = deps;

  /** The session of this cookie, if it is live and its token still valid. */
  const liveSession = async (id: string | undefined): Promise<Session | undefined> => {
    const session = await sessions.find(id);
    return session && registry.isCurrent(session.principal) ? session : undefined;
  };

  /**
   * The one path every credential takes first, over HTTP, at sign-in and on the admin socket: an
   * address that failed too often is refused outright (the right token included: a guesser learns
   * nothing); a presented token is verified, and a wrong one is counted against its address. With
   * no token, the caller goes on to the admin page's session.
   */
  const checkToken = async (address: string, token: string | undefined): Promise<TokenCheck> => {
    const wait = await failures.blockedFor(address);
    if (wait > 0) return { outcome: 'blocked', retryAfterSeconds: wait };
    if (token === undefined) return { outcome: 'none' };
    const principal = registry.verify(token);
    if (principal) return { outcome: 'valid', principal };
    await failures.failed(address);
    return { outcome: 'wrong' };
  };

  /** Any valid credential: 401 without one, 429 for an address that failed too often. */
  const authenticate: RequestHandler = async (req, res, next) => {
    const check = await checkToken(req.ip ?? 'unknown', bearer(req));
    if (check.outcome === 'blocked') throw new TooManyFailuresError(check.retryAfterSeconds);
    if (check.outcome === 'wrong') throw new UnauthorizedError(TOKEN_REFUSED);
    if (check.outcome === 'valid') {
      res.locals.principal = check.principal;
      return next();
    }
    const session = await sessionOfRequest(req, liveSession);
    if (!session) throw new UnauthorizedError();
    res.locals.principal = session.principal;
    res.locals.session = session;
    next();
  };

  /**
   * The admin socket's credential: `auth.token`, or the admin page's session cookie (from a
   * page of our own origin). Resolves to who it is (and the session, which the socket must not
   * outlive), or to why not. `address` is the client's, as `req.ip` would have it.
   */
  const socketPrincipal = async (handshake: {
    auth: Record<string, unknown> | undefined;
    headers: IncomingHttpHeaders;
    address: string;
  }): Promise<SocketCredential | { refused: string }> => {
    const token = handshake.auth?.token;
    const check = await checkToken(handshake.address, typeof token === 'string' ? token : undefined);
    if (check.outcome === 'blocked') return { refused: blockedText(check.retryAfterSeconds) };
    if (check.outcome === 'wrong') return { refused: TOKEN_REFUSED };
    if (check.outcome === 'valid') return { principal: check.principal };
    const id = sessionIdFrom(handshake.headers);
    const session = id !== undefined && handshakeFromOwnOrigin(handshake.headers) ? await liveSession(id) : undefined;
    if (id !== undefined && session)
      return { principal: session.principal, session: { key: sessionKeyOf(id), expiresAt: session.expiresAt } };
    return { refused: 'The admin events need a token (auth: { role: "admin", token }) or a signed-in admin page.' };
  };

  return {
    registry,
    sessions,
    failures,
    signIns,
    checkToken,
    authenticate,
    requireWriter,
    socketPrincipal,
    liveSession,
  };
}

export type Access = ReturnType<typeof createAccess>;
