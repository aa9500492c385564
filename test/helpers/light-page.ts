import { createLiveSync, fetchFragment } from '../../public/js/live-sync.js';
import type { TestApp } from './app.js';

/** What a light page shows: killed, live and whole, live but short, or waiting for its content. */
export type PageContent = 'killed' | 'live' | 'short' | 'waiting';

export interface LightPage {
  viewer: string;
  content(): PageContent;
  /** Requests this page made to our server since it opened: fragments, turns (503), failures. */
  requests: { fragments: number; waits: number; failures: number };
  /** Every wait it showed while catching up (ms to its next try). */
  waits: number[];
}

/**
 * A feed page without the DOM: a real Socket.IO connection with the viewer's cookie, running the
 * page's own policy (public/js/live-sync.js, the module feed.js runs) with counters for effects.
 */
export async function openLightPage(app: TestApp, viewer: string): Promise<LightPage> {
  let content: PageContent = 'live';
  const page: LightPage = { viewer, content: () => content, requests: { fragments: 0, waits: 0, failures: 0 }, waits: [] };
  const sync = createLiveSync({
    live: true,
    effects: {
      kill: () => void (content = 'killed'),
      fetchFragment: async (turn) => {
        try {
          const answer = await fetchFragment(`${app.url}/fragments/feed`, turn, { headers: { cookie: `viewer=${viewer}` } });
          page.requests[answer.kind === 'wait' ? 'waits' : 'fragments']++;
          return answer;
        } catch (error) {
          page.requests.failures++;
          throw error;
        }
      },
      swap: (html) => void (content = html.includes('data-source="live"') && !html.includes('fallback-avatar.svg') ? 'live' : 'short'),
      catchingUp: (waitMs) => {
        if (waitMs === undefined) return;
        page.waits.push(waitMs);
        if (content === 'killed') content = 'waiting';
      },
      theme: () => undefined,
      say: () => undefined,
    },
  });
  const socket = await app.socket({ cookie: `viewer=${viewer}` });
  socket.on('flag_update', (update) => sync.update(update));
  socket.on('flag_snapshot', (values) => sync.snapshot(values));
  for (const snapshot of socket.snapshots) sync.snapshot(snapshot);
  return page;
}
