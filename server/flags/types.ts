import type { FlagDefinition } from '../../protocol/wire.js';

/** One flag in flagd's format: typed once, for the server and the pages (protocol/wire.js). */
export type { FlagDefinition };

/**
 * A flagd flag-definition document, as in FLAGS_FILE. Members besides `flags` (flag-set
 * `metadata`, `$evaluators`) are kept as written across the app's writes.
 */
export interface FlagdDocument {
  $schema?: string;
  $evaluators?: Record<string, unknown>;
  flags: Record<string, FlagDefinition>;
  [member: string]: unknown;
}

/** A flag as the API shows it: the version counts its writes and is never part of the definition. */
export interface FlagRecord {
  key: string;
  version: number;
  definition: FlagDefinition;
}

export type ChangeSource = 'admin' | 'cli' | 'api' | 'file' | 'auto' | 'system';

/**
 * Who made a change and from where. Through the API, `name` is the name of the token that
 * wrote (never what the caller claims); `note` is what the caller adds (X-Actor: "Maya, on call").
 */
export interface Actor {
  source: ChangeSource;
  name: string;
  note?: string | undefined;
  address?: string | undefined;
}

/** One applied change of one flag; `before` is absent for a new flag, `after` for a removed one. */
export interface FlagChange {
  key: string;
  version: number;
  before: FlagDefinition | undefined;
  after: FlagDefinition | undefined;
  actor: Actor;
  at: string;
}
