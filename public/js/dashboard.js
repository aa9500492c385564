// @ts-check
import { KILL_SWITCH } from '../../protocol/flags.js';
import { clockTicks, WHOLE_STEPS } from './chart-ticks.js';

/**
 * The launch dashboard: three live charts (uPlot, served by our server) fed once a second over
 * Socket.IO, with every flip marked on the timeline. The effect of a kill is visible at a
 * glance: the third-party call rate drops to zero.
 */

/** @typedef {import('../../protocol/wire.js').StatsSample} Sample */
/** @typedef {{ at: string, key: string, summary: string }} Flip */

const WINDOW = 300; // seconds kept on screen

/**
 * @param {import('socket.io-client').Socket} socket
 * @param {() => Flip[]} flips the audit entries to mark (newest first)
 */
export function startDashboard(socket, flips) {
  const uPlot = window.uPlot;
  /** @type {Sample[]} */
  let samples = [];
  // Read at each build: a theme change rebuilds the charts in the theme's colours.
  const color = (/** @type {string} */ name) =>
    getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';

  /**
   * Vertical lines at each flip: red for a kill, green for a restore, grey for other flags. A
   * label is drawn only where it does not run into the one before (a burst of flips would pile
   * into an unreadable smear: their lines say enough), and it goes left of its line where the
   * right edge would clip it.
   */
  const flipMarks = {
    hooks: {
      draw: [
        (/** @type {import('uplot')} */ u) => {
          const { ctx, bbox } = u;
          const px = devicePixelRatio;
          let drawn = 0;
          let labelsEndAt = -Infinity;
          const inView = flips()
            .map((flip) => ({ flip, t: Date.parse(flip.at) / 1000 }))
            .filter(({ t }) => t >= (u.scales.x?.min ?? -Infinity) && t <= (u.scales.x?.max ?? Infinity))
            .sort((a, b) => a.t - b.t);
          for (const { flip, t } of inView) {
            drawn++;
            const x = Math.round(u.valToPos(t, 'x', true));
            const kill = flip.key === KILL_SWITCH && flip.summary.startsWith('killed');
            const restore = flip.key === KILL_SWITCH && flip.summary.startsWith('restored');
            const other = flip.key === KILL_SWITCH && !kill && !restore;
            ctx.save();
            ctx.strokeStyle = kill
              ? color('--danger')
              : restore
                ? color('--ok')
                : other
                  ? color('--warn')
                  : color('--muted');
            ctx.lineWidth = 2 * px;
            ctx.setLineDash([6 * px, 4 * px]);
            ctx.beginPath();
            ctx.moveTo(x, bbox.top);
            ctx.lineTo(x, bbox.top + bbox.height);
            ctx.stroke();
            ctx.fillStyle = ctx.strokeStyle;
            ctx.font = `${11 * px}px system-ui, sans-serif`;
            const label = kill ? 'kill' : restore ? 'restore' : other ? 'targeting' : flip.key;
            const width = ctx.measureText(label).width;
            const fitsRight = x + 4 * px + width <= bbox.left + bbox.width;
            const start = fitsRight ? x + 4 * px : x - 4 * px - width;
            if (start >= labelsEndAt + 6 * px) {
              ctx.fillText(label, start, bbox.top + 12 * px);
              labelsEndAt = start + width;
            }
            ctx.restore();
          }
          // What the canvas shows, said in the DOM too (for assistive tech and for tests).
          if (u.root.parentElement) u.root.parentElement.dataset.flipsDrawn = String(drawn);
        },
      ],
    },
  };

  /**
   * @param {string} id
   * @param {{ label: string, stroke: string, scale?: string }[]} series
   * @param {import('uplot').Axis[]} axes
   */
  const chart = (id, series, axes) => {
    const host = /** @type {HTMLElement} */ (document.getElementById(id));
    // Said in the DOM: the theme whose colours the chart is drawn in (for tests, and for a glance).
    host.dataset.themeDrawn = document.documentElement.dataset.theme ?? '';
    return new uPlot(
      {
        width: host.clientWidth || 600,
        height: 180,
        plugins: [flipMarks],
        legend: { live: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true } },
        series: [{}, ...series.map((s) => ({ ...s, width: 2, points: { show: false } }))],
        axes: [
          {
            stroke: color('--muted'),
            grid: { stroke: color('--border') },
            space: 80,
            values: (/** @type {unknown} */ _u, /** @type {number[]} */ splits) => clockTicks(splits),
          },
          ...axes,
        ],
      },
      [[], ...series.map(() => [])],
      host,
    );
  };
  const axis = (/** @type {string} */ label, /** @type {string} */ scale, side = 3, whole = true) => ({
    label,
    scale,
    side,
    stroke: color('--muted'),
    grid: { stroke: color('--border') },
    size: 56,
    ...(whole ? { incrs: [...WHOLE_STEPS] } : {}),
  });

  /** The three charts, in the colours of the theme the page has now. */
  const build = () => ({
    calls: chart(
      'chart-calls',
      [
        { label: 'ok', stroke: color('--ok'), scale: 'n' },
        { label: 'error', stroke: color('--danger'), scale: 'n' },
        { label: 'timeout', stroke: color('--warn'), scale: 'n' },
        { label: 'invalid', stroke: '#a855f7', scale: 'n' },
      ],
      [axis('calls / s', 'n')],
    ),
    traffic: chart(
      'chart-traffic',
      [
        { label: 'browsers', stroke: color('--accent'), scale: 'b' },
        { label: 'page views / s', stroke: color('--muted'), scale: 'v' },
      ],
      [axis('browsers', 'b'), axis('views / s', 'v', 1)],
    ),
    latency: chart(
      'chart-latency',
      [{ label: 'ms', stroke: color('--warn'), scale: 'ms' }],
      [axis('ms', 'ms', 3, false)],
    ),
  });
  const theme = () => document.documentElement.dataset.theme;
  let plots = build();
  let builtFor = theme();

  const text = (/** @type {string} */ id, /** @type {string} */ value) => {
    const node = document.getElementById(id);
    if (node) node.textContent = value;
  };

  const draw = () => {
    // A live theme change: the charts are drawn again in its colours.
    if (theme() !== builtFor) {
      for (const plot of Object.values(plots)) plot.destroy();
      plots = build();
      builtFor = theme();
    }
    const { calls, traffic, latency } = plots;
    const t = samples.map((s) => s.t);
    calls.setData([
      t,
      samples.map((s) => s.calls.ok),
      samples.map((s) => s.calls.error),
      samples.map((s) => s.calls.timeout),
      samples.map((s) => s.calls.invalid),
    ]);
    traffic.setData([t, samples.map((s) => s.browsers), samples.map((s) => s.pageViews)]);
    latency.setData([t, samples.map((s) => s.latencyMs)]);
    const last = samples.at(-1);
    if (!last) return;
    const total = last.calls.ok + last.calls.error + last.calls.timeout + last.calls.invalid;
    text('calls-per-second', String(total));
    text('failed-per-second', String(total - last.calls.ok));
    text('views-per-second', String(last.pageViews));
    text('latency-ms', last.latencyMs === null ? '—' : String(last.latencyMs));
  };

  socket.on('admin_stats', (/** @type {Sample[]} */ incoming) => {
    samples = [...samples, ...incoming].slice(-WINDOW);
    draw();
  });

  const resize = () => {
    /** @type {[import('uplot'), string][]} */
    const sized = [
      [plots.calls, 'chart-calls'],
      [plots.traffic, 'chart-traffic'],
      [plots.latency, 'chart-latency'],
    ];
    for (const [plot, id] of sized) {
      const host = document.getElementById(id);
      if (host) plot.setSize({ width: host.clientWidth, height: 180 });
    }
  };
  new ResizeObserver(resize).observe(/** @type {HTMLElement} */ (document.getElementById('dashboard')));
  return { redraw: draw };
}
