import { describe, expect, it } from 'vitest';
import { healthOf } from '../../public/js/admin/health.js';

const window = (made: number, failed: number, latencyMs: number | null = 100) => ({
  calls: { ok: made - failed, error: failed, timeout: 0, invalid: 0 },
  skipped: { killed: 0, breaker_open: 0, over_capacity: 0, deferred: 0 },
  made,
  failed,
  latencyMs,
  seconds: 60,
});
const closed = { breaker: 'closed', timeoutMs: 800 };

describe("a service's health over the last minute", () => {
  it('failing: a breaker open, or a fifth of at least ten calls failed', () => {
    expect(healthOf({ breaker: 'open', timeoutMs: 800 }, window(0, 0))).toBe('failing');
    expect(healthOf({ breaker: 'isolated', timeoutMs: 800 }, window(50, 0))).toBe('failing');
    expect(healthOf(closed, window(10, 3))).toBe('failing');
    expect(healthOf(closed, window(10, 2))).toBe('struggling');
  });

  it('struggling: failures past 5 % of however few calls, a breaker trying again, or slow calls', () => {
    expect(healthOf(closed, window(9, 5))).toBe('struggling');
    expect(healthOf(closed, window(100, 6))).toBe('struggling');
    expect(healthOf(closed, window(100, 5))).toBe('ok');
    expect(healthOf({ breaker: 'half-open', timeoutMs: 800 }, window(3, 0))).toBe('struggling');
    expect(healthOf(closed, window(20, 0, 401))).toBe('struggling');
    expect(healthOf(closed, window(20, 0, 400))).toBe('ok');
  });

  it('idle when it made no call (killed, or no traffic)', () => {
    expect(healthOf(closed, window(0, 0, null))).toBe('idle');
  });
});
