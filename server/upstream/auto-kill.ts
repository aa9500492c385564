import { KILL_SWITCH } from '../flags/catalog.js';
import { KILL_PATCH } from '../flags/kill-switch.js';
import type { FlagRepository } from '../flags/repository.js';
import type { Logger } from '../observability/logger.js';
import type { UpstreamClient } from './client.js';

/**
 * AUTO_KILL: when a third-party service's breaker opens, the app flips the kill switch itself,
 * recorded in the audit as automatic with the reason, and pushed like any flip. It never
 * restores: bringing the third party back is a human decision.
 */
export function autoKillOnBreakerOpen(options: {
  clients: UpstreamClient[];
  flags: Pick<FlagRepository, 'update'>;
  logger: Logger;
}): void {
  for (const client of options.clients) {
    client.onBreakerStateChange((state) => {
      if (state !== 'open') return;
      const reason = `circuit breaker for ${client.service} opened after repeated failures`;
      options.flags
        .update(KILL_SWITCH, (current) => ({ ...current, ...KILL_PATCH }), {
          actor: { source: 'auto', name: `auto-kill: ${reason}` },
        })
        .then(
          (record) =>
            options.logger.warn(
              { service: client.service, version: record.version },
              `AUTO_KILL: kill switch flipped (${reason})`,
            ),
          (error: unknown) => options.logger.error({ err: error }, 'AUTO_KILL could not flip the kill switch'),
        );
    });
  }
}
