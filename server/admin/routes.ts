import { Router } from 'express';
import { flagCatalog, KILL_SWITCH } from '../flags/catalog.js';
import { people } from '../feed/content.js';
import type { AuditReader } from '../flags/audit.js';
import type { FlagSource } from '../flags/source.js';
import type { AdminState } from '../realtime/events.js';
import type { Metrics } from '../observability/metrics.js';
import type { UpstreamClient } from '../upstream/client.js';

/** What the launch-control page shows; rendered at first, then pushed live to the "admin" room. */
export function createAdminState(
  source: FlagSource,
  audit: AuditReader | undefined,
  upstream: readonly UpstreamClient[] = [],
  metrics?: Metrics,
) {
  /** Calls made by service and outcome, and calls skipped by reason, from the Prometheus counters. */
  const counts = async () => {
    const made = (await metrics?.upstreamRequests.get())?.values ?? [];
    const skipped = (await metrics?.upstreamSkipped.get())?.values ?? [];
    return (service: string) => ({
      calls: Object.fromEntries(made.filter((v) => v.labels.service === service).map((v) => [String(v.labels.outcome), v.value])),
      skipped: Object.fromEntries(skipped.filter((v) => v.labels.service === service).map((v) => [String(v.labels.reason), v.value])),
    });
  };
  return async (browsers: number): Promise<AdminState> => {
    const of = await counts();
    const readiness = source.readiness();
    return {
      source: { kind: source.kind, writable: source.store !== undefined, ...readiness },
      // A read-only source (LaunchDarkly) has no definitions to show: the app's flags, by key.
      flags: (source.store?.list() ?? Object.keys(flagCatalog).map((key) => ({ key, version: source.versionOf(key), definition: null }))).map(
        (record) => ({ ...record, description: flagCatalog[record.key]?.description ?? '' }),
      ),
      audit: audit?.recent(30) ?? [],
      browsers,
      upstream: upstream.map((client) => ({ service: client.service, breaker: client.breakerState(), ...of(client.service) })),
    };
  };
}

export function createAdminRoutes(deps: { adminState: () => Promise<AdminState> }): Router {
  const router = Router();
  router.get('/admin', async (_req, res) => {
    res.set('Cache-Control', 'no-store').render('admin', { state: await deps.adminState(), killSwitch: KILL_SWITCH, people });
  });
  return router;
}
