import type { IncomingMessage, ServerResponse } from 'node:http';

export type Route = 'avatars' | 'recommendations' | 'images' | 'other';

export interface SimulatorStats {
  requests: Record<Route, number>;
  total: number;
  inFlight: number;
  peakInFlight: number;
  /** Per service, from the moment a request arrives until its connection is done with it. */
  inFlightBy: Record<Route, number>;
  peakInFlightBy: Record<Route, number>;
}

const zero = (): Record<Route, number> => ({ avatars: 0, recommendations: 0, images: 0, other: 0 });
const fresh = (): SimulatorStats => ({
  requests: zero(),
  total: 0,
  inFlight: 0,
  peakInFlight: 0,
  inFlightBy: zero(),
  peakInFlightBy: zero(),
});

export function routeOf(url: string | undefined): Route {
  const path = (url ?? '').split('?')[0]!;
  if (path.startsWith('/v1/recommendations')) return 'recommendations';
  if (/^\/v1\/avatars\/[^/]+\.svg$/.test(path)) return 'images';
  return path.startsWith('/v1/avatars/') ? 'avatars' : 'other';
}

/**
 * What the simulated third party sees: every request it gets, and how many are in flight at once,
 * per route, which is how the tests prove that a killed feed makes no call, and that the third
 * party never sees more than the cap.
 */
export class TrafficCounter {
  private stats = fresh();

  /** Counts a request from its arrival until its connection is done with it (answered, or given up on). */
  arrived(req: IncomingMessage, res: ServerResponse): void {
    const route = routeOf(req.url);
    const { stats } = this;
    stats.total++;
    stats.requests[route]++;
    stats.inFlight++;
    stats.peakInFlight = Math.max(stats.peakInFlight, stats.inFlight);
    stats.inFlightBy[route]++;
    stats.peakInFlightBy[route] = Math.max(stats.peakInFlightBy[route], stats.inFlightBy[route]);
    // Counted down on the stats of the moment: a reset in between keeps what is still in flight.
    res.on('close', () => {
      this.stats.inFlight--;
      this.stats.inFlightBy[route]--;
    });
  }

  snapshot(): SimulatorStats {
    return structuredClone(this.stats);
  }

  /** Starts counting afresh; what is in flight now stays counted (and is the new peak). */
  reset(): void {
    const { inFlight, inFlightBy } = this.stats;
    this.stats = { ...fresh(), inFlight, inFlightBy, peakInFlight: inFlight, peakInFlightBy: { ...inFlightBy } };
  }
}
