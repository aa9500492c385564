import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../observability/logger.js';
import type { TokenRecord, TokenStore } from './token-store.js';

/** What a token may do: `full` reads and writes; `read-only` reads `/api` and watches `/admin`. */
export type Scope = 'full' | 'read-only';
export const SCOPES: readonly Scope[] = ['full', 'read-only'];

/** `ADMIN_TOKEN`'s name. No other token may take it. */
export const ADMIN_TOKEN_NAME = 'admin';

/** A token's name: what the audit shows as who changed a flag. */
export const TOKEN_NAME = /^[a-z0-9][a-z0-9._-]{0,39}$/;

/** Who a request or a socket acts as: a token's name and scope. */
export interface Principal {
  name: string;
  scope: Scope;
  /** The digest of the token it proved, so that a session dies with its token (revoked, or re-created). */
  digest: string;
}

/** What `npm run token -- list` and the admin page show of a token: never the token itself. */
export interface TokenInfo {
  name: string;
  scope: Scope;
  createdAt: string | undefined;
  lastUsedAt: string | undefined;
  /** The admin token comes from ADMIN_TOKEN (or its file), not from the token store. */
  builtIn: boolean;
}

/** SHA-256, hex. Tokens are 256 random bits, so a fast hash is enough: nothing to brute-force. */
export function digestOf(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * A token as it appears in text: `ks_` and 43 base64url characters. Not bounded by \b: a token may
 * end in "-", and a word boundary after it would miss one token in 64.
 */
export const TOKEN_IN_TEXT = /(?<![A-Za-z0-9_-])ks_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/;

/** A new token: `ks_` (so that secret scanners can spot a leaked one) and 256 random bits. */
export function newToken(): string {
  return `ks_${randomBytes(32).toString('base64url')}`;
}

/** A usage time is written at most this often per token: a busy script must not write on every call. */
const USAGE_WRITE_EVERY_MS = 60_000;

/**
 * The tokens this server accepts: the admin token, and the named tokens of the token store
 * (kept as digests). Verification compares the presented token's digest with every known digest
 * in constant time, with no early exit. The store is watched: a token created or revoked
 * anywhere (`npm run token`, another instance) is known here at once; `onChange` tells who
 * must check again (live admin sockets).
 */
export interface TokenRegistry {
  verify(presented: string | undefined): Principal | undefined;
  /** Whether the token a principal proved is still valid (not revoked, not replaced). */
  isCurrent(principal: Principal): boolean;
  list(): Promise<TokenInfo[]>;
  onChange(listener: () => void): void;
  close(): Promise<void>;
}

export async function createTokenRegistry(options: {
  adminToken: string;
  store: TokenStore;
  logger: Logger;
  /** How long start-up waits for the named tokens (Redis may be away); the admin token works meanwhile. */
  loadTimeoutMs?: number;
}): Promise<TokenRegistry> {
  const { store, logger } = options;
  const admin: TokenRecord = { name: ADMIN_TOKEN_NAME, scope: 'full', digest: digestOf(options.adminToken), createdAt: undefined };
  let known: TokenRecord[] = [admin];
  const lastUsed = new Map<string, { at: string; writtenAt: number }>();
  const listeners: (() => void)[] = [];

  const reload = async () => {
    const stored = (await store.list()).filter((record) => record.name !== ADMIN_TOKEN_NAME);
    known = [admin, ...stored];
  };
  const reloadAndTell = () =>
    reload().then(
      () => {
        for (const listener of listeners) listener();
      },
      (error: unknown) => logger.error({ err: error }, 'could not load the access tokens; the last known ones stay valid'),
    );
  const unwatch = await store.watch(() => void reloadAndTell());
  // Bounded: a start with Redis away serves with the admin token alone, and loads the named
  // tokens when Redis answers (the store tells us then).
  let waited: NodeJS.Timeout | undefined;
  await Promise.race([reloadAndTell(), new Promise((resolve) => (waited = setTimeout(resolve, options.loadTimeoutMs ?? 3000)))]);
  clearTimeout(waited);

  // Uses being written now: a close waits for them, so that none is lost (or leaves its lock) at a stop.
  const writing = new Set<Promise<void>>();
  const used = (name: string) => {
    const at = new Date();
    const previous = lastUsed.get(name);
    const due = !previous || at.getTime() - previous.writtenAt >= USAGE_WRITE_EVERY_MS;
    lastUsed.set(name, { at: at.toISOString(), writtenAt: due ? at.getTime() : previous.writtenAt });
    if (!due) return;
    const write = store.markUsed(name, at.toISOString()).catch((error: unknown) => logger.warn({ err: error, token: name }, 'could not record a token\'s use'));
    writing.add(write);
    void write.finally(() => writing.delete(write));
  };

  return {
    verify(presented) {
      if (!presented) return undefined;
      const digest = Buffer.from(digestOf(presented), 'hex');
      let match: TokenRecord | undefined;
      for (const record of known) {
        // Every digest compared, whatever matched: the time taken says nothing of which one did.
        if (timingSafeEqual(digest, Buffer.from(record.digest, 'hex')) && !match) match = record;
      }
      if (!match) return undefined;
      used(match.name);
      return { name: match.name, scope: match.scope, digest: match.digest };
    },
    isCurrent: (principal) => known.some((record) => record.name === principal.name && record.digest === principal.digest),
    async list() {
      const usage = await store.lastUsed().catch(() => ({}) as Record<string, string>);
      return known.map((record) => {
        const here = lastUsed.get(record.name)?.at;
        const there = usage[record.name];
        return {
          name: record.name,
          scope: record.scope,
          createdAt: record.createdAt,
          lastUsedAt: here && there ? (here > there ? here : there) : (here ?? there),
          builtIn: record === admin,
        };
      });
    },
    onChange: (listener) => void listeners.push(listener),
    async close() {
      await unwatch();
      await Promise.all(writing);
      // The last uses not yet written.
      await Promise.all(
        [...lastUsed].map(([name, use]) => (use.writtenAt < Date.parse(use.at) ? store.markUsed(name, use.at).catch(() => undefined) : undefined)),
      );
    },
  };
}
