import { Router } from 'express';
import { flagCatalog, KILL_SWITCH } from '../flags/catalog.js';
import { people } from '../feed/content.js';
import type { AuditLog } from '../flags/audit.js';
import type { FlagSource } from '../flags/source.js';
import type { AdminState } from '../realtime/events.js';

/** What the launch-control page shows; rendered at first, then pushed live to the "admin" room. */
export function createAdminState(source: FlagSource, audit: AuditLog | undefined) {
  return (browsers: number): AdminState => {
    const readiness = source.readiness();
    return {
      source: { kind: source.kind, writable: source.store !== undefined, ...readiness },
      // A read-only source (LaunchDarkly) has no definitions to show: the app's flags, by key.
      flags: (source.store?.list() ?? Object.keys(flagCatalog).map((key) => ({ key, version: source.versionOf(key), definition: null }))).map(
        (record) => ({ ...record, description: flagCatalog[record.key]?.description ?? '' }),
      ),
      audit: audit?.recent(30) ?? [],
      browsers,
    };
  };
}

export function createAdminRoutes(deps: { adminState: () => AdminState }): Router {
  const router = Router();
  router.get('/admin', (_req, res) => {
    res.set('Cache-Control', 'no-store').render('admin', { state: deps.adminState(), killSwitch: KILL_SWITCH, people });
  });
  return router;
}
