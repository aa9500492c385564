import { describe, expect, it } from 'vitest';
import { clockTicks, WHOLE_STEPS } from '../../public/js/chart-ticks.js';

describe("the dashboard's ticks", () => {
  it('tell the time on a 24-hour clock, with seconds only when ticks are closer than a minute', () => {
    const afternoon = Date.UTC(2026, 11, 7, 13, 5, 0) / 1000;
    const minutes = clockTicks([afternoon, afternoon + 60, afternoon + 120]);
    for (const tick of minutes) expect(tick).toMatch(/^\d{2}:\d{2}$/);
    const seconds = clockTicks([afternoon, afternoon + 30]);
    for (const tick of seconds) expect(tick).toMatch(/^\d{2}:\d{2}:\d{2}$/);
    // Never AM/PM, never a date: in any time zone an afternoon hour reads past 12 somewhere in a day.
    const day = Array.from({ length: 24 }, (_, hour) => afternoon + hour * 3600);
    expect(clockTicks(day).some((tick) => Number(tick.slice(0, 2)) > 12)).toBe(true);
    expect(clockTicks(day).join(' ')).not.toMatch(/AM|PM|\//);
  });

  it('count in whole numbers only', () => {
    expect(WHOLE_STEPS.every(Number.isInteger)).toBe(true);
    expect(WHOLE_STEPS[0]).toBe(1);
  });
});
