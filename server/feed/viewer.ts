import { randomBytes } from 'node:crypto';
import type { EvaluationContext } from '@openfeature/server-sdk';
import { parse as parseCookies } from 'cookie';
import { findPerson, type Person } from './content.js';

export const VIEWER_COOKIE = 'viewer';
export const VIEWER_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;

/** Who is looking at the page. A demo person, a named key from ?user=, or an anonymous guest. */
export interface Viewer {
  key: string;
  name: string;
  groups: readonly string[];
  person: Person | undefined;
  anonymous: boolean;
}

export function newAnonymousKey(): string {
  return `anon-${randomBytes(6).toString('base64url').replace(/[-_]/g, 'x')}`;
}

export function isValidViewerKey(key: string): boolean {
  return VIEWER_KEY_PATTERN.test(key);
}

export function viewerFor(key: string): Viewer {
  const person = findPerson(key);
  if (person) return { key, name: person.name, groups: person.groups, person, anonymous: false };
  const anonymous = key.startsWith('anon-');
  return { key, name: anonymous ? `Guest ${key.slice(5, 9)}` : key, groups: [], person: undefined, anonymous };
}

/** The viewer key kept in the cookie, if there is a valid one. */
export function viewerKeyFromCookieHeader(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const key = parseCookies(header)[VIEWER_COOKIE];
  return key && isValidViewerKey(key) ? key : undefined;
}

/**
 * The evaluation context: the same at page render and at the Socket.IO handshake, because both
 * are made here from the same cookie. `targetingKey` is what percentage rollouts hash.
 */
export function evaluationContext(viewer: Viewer): EvaluationContext {
  const context: EvaluationContext = {
    targetingKey: viewer.key,
    name: viewer.name,
    groups: [...viewer.groups],
    anonymous: viewer.anonymous,
  };
  if (viewer.person) context.country = viewer.person.country;
  return context;
}
