import type { FlagValueType } from '@openfeature/server-sdk';
import type { FlagdDocument } from './types.js';

/** The kill switch: `true` lets the feed call the third party, `false` sheds it. */
export const KILL_SWITCH = 'show-avatars-and-reccs';

export interface CatalogEntry<T = unknown> {
  type: FlagValueType;
  /** The value in code when the flag is disabled, missing or fails to evaluate: always the safe one. */
  safeDefault: T;
  description: string;
}

/**
 * The flags this app reads, each with its type and safe default. The page uses every one of
 * them, so every one is in `flag_snapshot` and pushed live.
 */
export const flagCatalog: Record<string, CatalogEntry> = {
  [KILL_SWITCH]: {
    type: 'boolean',
    safeDefault: false,
    description: 'Kill switch for third-party avatars and recommendations. Off (or disabled) = no third-party calls.',
  },
};

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
    },
  };
}
