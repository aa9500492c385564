import { createLightPage, type LightPage } from '../../testing/light-page.js';
import type { TestApp } from './app.js';

export type { LightPage, PageContent } from '../../testing/light-page.js';

/**
 * A feed page without the DOM (testing/light-page.ts: the page's own policy with counters) on a
 * real Socket.IO connection with the viewer's cookie.
 */
export async function openLightPage(app: TestApp, viewer: string): Promise<LightPage> {
  const page = createLightPage(app.url, viewer);
  const socket = await app.socket({ cookie: `viewer=${viewer}` });
  socket.on('flag_update', (update) => page.update(update));
  socket.on('flag_snapshot', (values) => page.snapshot(values));
  for (const snapshot of socket.snapshots) page.snapshot(snapshot);
  return page;
}
