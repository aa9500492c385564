import type { FlagValue, FlagValueType } from '@openfeature/server-sdk';
import type { FlagdDocument } from './types.js';

// The keys the pages react to are shared with them (protocol/flags.js): one source.
import { KILL_SWITCH, RECS_FLAVOUR, THEME } from '../../protocol/flags.js';

export { KILL_SWITCH, RECS_FLAVOUR, THEME };
/** The server's own log level, changed live without a restart. */
export const LOG_LEVEL = 'log-level';

export interface CatalogEntry {
  type: FlagValueType;
  /** The value in code when the flag is disabled, missing or fails to evaluate: always the safe one. */
  safeDefault: FlagValue;
  /**
   * `page`: evaluated per viewer, in every flag_snapshot, pushed live. `server`: evaluated for
   * the server itself (context `{ targetingKey: "server" }`) and applied there.
   */
  scope: 'page' | 'server';
  description: string;
}

/** The flags this app reads, each with its type, safe default and scope. */
export const flagCatalog: Record<string, CatalogEntry> = {
  [KILL_SWITCH]: {
    type: 'boolean',
    safeDefault: false,
    scope: 'page',
    description: 'Kill switch for third-party avatars and recommendations. Off (or disabled) = no third-party calls.',
  },
  [RECS_FLAVOUR]: {
    type: 'string',
    safeDefault: 'classic',
    scope: 'page',
    description: 'Which personalized recommendations to ask the third party for: classic, trending or friends.',
  },
  [THEME]: {
    type: 'string',
    safeDefault: 'light',
    scope: 'page',
    description: 'The look of the feed: light, dark, or the seasonal aurora theme.',
  },
  [LOG_LEVEL]: {
    type: 'string',
    safeDefault: 'info',
    scope: 'server',
    description: "The server's log level (error, warn, info, debug), applied live.",
  },
};

/** The flags every feed page uses: the keys of flag_snapshot. */
export const pageFlagKeys = Object.keys(flagCatalog).filter((key) => flagCatalog[key]!.scope === 'page');

/** The document written to FLAGS_FILE (or Redis) when there is none yet. */
export function defaultFlagDocument(): FlagdDocument {
  return {
    $schema: 'https://flagd.dev/schema/v0/flags.json',
    flags: {
      [KILL_SWITCH]: {
        state: 'ENABLED',
        variants: { on: true, off: false },
        defaultVariant: 'on',
      },
      [RECS_FLAVOUR]: {
        state: 'ENABLED',
        variants: { classic: 'classic', trending: 'trending', friends: 'friends' },
        defaultVariant: 'classic',
        // The beta group gets "friends"; everyone else: 20 % "trending", the rest "classic".
        targeting: {
          if: [
            { in: ['beta', { var: 'groups' }] },
            'friends',
            {
              fractional: [
                ['classic', 80],
                ['trending', 20],
              ],
            },
          ],
        },
      },
      [THEME]: {
        state: 'ENABLED',
        variants: { light: 'light', dark: 'dark', aurora: 'aurora' },
        defaultVariant: 'light',
      },
      // Disabled: LOG_LEVEL from the environment decides. Enable it to override the level live.
      [LOG_LEVEL]: {
        state: 'DISABLED',
        variants: { error: 'error', warn: 'warn', info: 'info', debug: 'debug' },
        defaultVariant: 'info',
      },
    },
  };
}
