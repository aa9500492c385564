// @ts-check
/**
 * The dashboard's tick labels: time on a 24-hour clock in the browser's locale (no AM/PM, no US
 * date), and counts at whole numbers only (no "0.5 browsers").
 */

/**
 * A time tick (Unix seconds) as HH:MM, with seconds when ticks are closer than a minute.
 * @param {number[]} splits
 * @returns {string[]}
 */
export function clockTicks(splits) {
  const step = splits.length > 1 ? Number(splits[1]) - Number(splits[0]) : 60;
  return splits.map((t) =>
    new Date(t * 1000).toLocaleTimeString(undefined, {
      hour: '2-digit',
      minute: '2-digit',
      ...(step < 60 ? { second: '2-digit' } : {}),
      hour12: false,
    }),
  );
}

/** The steps a count axis may tick at: whole numbers only. */
export const WHOLE_STEPS = Object.freeze([
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000,
]);
