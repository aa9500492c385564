import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { within } from '../bounded-wait.js';
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
  return hash('sha256', token, 'hex');
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

export interface TokenRegistryOptions {
  adminToken: string;
  store: TokenStore;
  logger: Logger;
  /** How long start-up waits for the named tokens (Redis may be away); the admin token works meanwhile. */
  loadTimeoutMs?: number;
}

/**
 * When each token was last used, here: the time, and when it was last written to the store. A use
 * is written at most once a minute per token; a close writes the last ones, and waits for those
 * being written, so that none is lost (or leaves its lock) at a stop.
 */
class UsageRecorder {
  readonly lastUsed = new Map<string, { at: string; writtenAt: number }>();
  private readonly writing = new Set<Promise<void>>();

  constructor(
    private readonly store: TokenStore,
    private readonly logger: Logger,
  ) {}

  used(name: string): void {
    const at = new Date();
    const previous = this.lastUsed.get(name);
    const due = !previous || at.getTime() - previous.writtenAt >= USAGE_WRITE_EVERY_MS;
    this.lastUsed.set(name, { at: at.toISOString(), writtenAt: due ? at.getTime() : previous.writtenAt });
    if (!due) return;
    const write = this.store
      .markUsed(name, at.toISOString())
      .catch((error: unknown) => this.logger.warn({ err: error, token: name }, "could not record a token's use"));
    this.writing.add(write);
    void write.finally(() => this.writing.delete(write));
  }

  async flush(): Promise<void> {
    await Promise.all(this.writing);
    const unwritten = [...this.lastUsed].filter(([, use]) => use.writtenAt < Date.parse(use.at));
    await Promise.all(unwritten.map(([name, use]) => this.store.markUsed(name, use.at).catch(() => undefined)));
  }
}

class NamedTokens implements TokenRegistry {
  private known: TokenRecord[];
  private readonly listeners: (() => void)[] = [];
  private readonly usage: UsageRecorder;
  private unwatch: () => Promise<void> = async () => undefined;

  constructor(
    private readonly admin: TokenRecord,
    private readonly options: TokenRegistryOptions,
  ) {
    this.known = [admin];
    this.usage = new UsageRecorder(options.store, options.logger);
  }

  /** Follows the store, and loads the named tokens within the bound (Redis may be away: the store tells when they come). */
  async start(): Promise<void> {
    this.unwatch = await this.options.store.watch(() => void this.reloadAndTell());
    await within(this.reloadAndTell(), this.options.loadTimeoutMs ?? 3000);
  }

  verify(presented: string | undefined): Principal | undefined {
    if (!presented) return undefined;
    const digest = Buffer.from(digestOf(presented), 'hex');
    let match: TokenRecord | undefined;
    for (const record of this.known) {
      // Every digest compared, whatever matched: the time taken says nothing of which one did.
      if (timingSafeEqual(digest, Buffer.from(record.digest, 'hex')) && !match) match = record;
    }
    if (!match) return undefined;
    this.usage.used(match.name);
    return { name: match.name, scope: match.scope, digest: match.digest };
  }

  isCurrent(principal: Principal): boolean {
    return this.known.some((record) => record.name === principal.name && record.digest === principal.digest);
  }

  async list(): Promise<TokenInfo[]> {
    const elsewhere = await this.options.store.lastUsed().catch((): Record<string, string> => ({}));
    return this.known.map((record) => {
      const here = this.usage.lastUsed.get(record.name)?.at;
      const there = elsewhere[record.name];
      const lastUsedAt = here && there ? (here > there ? here : there) : (here ?? there);
      return {
        name: record.name,
        scope: record.scope,
        createdAt: record.createdAt,
        lastUsedAt,
        builtIn: record === this.admin,
      };
    });
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    await this.unwatch();
    await this.usage.flush();
  }

  private reloadAndTell(): Promise<void> {
    return this.options.store.list().then(
      (stored) => {
        this.known = [this.admin, ...stored.filter((record) => record.name !== ADMIN_TOKEN_NAME)];
        for (const listener of this.listeners) listener();
      },
      (error: unknown) =>
        this.options.logger.error({ err: error }, 'could not load the access tokens; the last known ones stay valid'),
    );
  }
}

export async function createTokenRegistry(options: TokenRegistryOptions): Promise<TokenRegistry> {
  const admin: TokenRecord = {
    name: ADMIN_TOKEN_NAME,
    scope: 'full',
    digest: digestOf(options.adminToken),
    createdAt: undefined,
  };
  const registry = new NamedTokens(admin, options);
  await registry.start();
  return registry;
}
