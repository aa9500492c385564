// @ts-check
import { isKilled, KILL_SWITCH } from '../../../protocol/flags.js';
import { $, el } from './dom.js';

/** @typedef {import('../../../protocol/wire.js').AdminState} AdminState */
/** @typedef {import('../../../protocol/wire.js').StatsSample} Sample */
/** @typedef {import('../../../protocol/wire.js').CallsByOutcome} CallsByOutcome */
/** @typedef {import('../../../protocol/wire.js').SkipsByReason} SkipsByReason */

/** The window every count on the page is over. */
export const WINDOW_SECONDS = 60;
/** Past this failed share (over at least MIN_CALLS calls in the window), a service is failing. */
const FAILING_SHARE = 0.2;
/** Past this failed share, or past half the timeout a call, a service is struggling. */
const STRUGGLING_SHARE = 0.05;
const MIN_CALLS = 10;

/**
 * One service over the window: calls made by outcome, calls not made by reason, the mean duration.
 * @typedef {{ calls: CallsByOutcome, skipped: SkipsByReason, made: number, failed: number, latencyMs: number | null, seconds: number }} ServiceWindow
 */

/** "12 s", "3 min", "2 h". */
const since = (/** @type {string} */ iso) => {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return seconds < 90
    ? `${seconds} s`
    : seconds < 5400
      ? `${Math.round(seconds / 60)} min`
      : `${Math.round(seconds / 3600)} h`;
};

/**
 * Whether a service is all right, from its breaker and its last minute: `failing` (breaker open,
 * or a fifth of at least ten calls failed), `struggling` (breaker trying again, failures past 5 %
 * of however few calls, or calls taking over half the timeout), `ok`, or `idle` (no call made).
 * @param {{ breaker: string, timeoutMs: number }} service
 * @param {ServiceWindow} window
 */
export function healthOf(service, window) {
  if (service.breaker === 'open' || service.breaker === 'isolated') return 'failing';
  const share = window.made ? window.failed / window.made : 0;
  if (window.made >= MIN_CALLS && share > FAILING_SHARE) return 'failing';
  if (service.breaker === 'half-open') return 'struggling';
  // Failures below MIN_CALLS are not yet an outage, but they are never "all right".
  if (window.failed > 0 && share > STRUGGLING_SHARE) return 'struggling';
  if (window.latencyMs !== null && window.latencyMs > service.timeoutMs / 2) return 'struggling';
  return window.made === 0 ? 'idle' : 'ok';
}

const WORDS = { failing: 'Failing', struggling: 'Struggling', ok: 'All right', idle: 'No calls' };

/**
 * The top of launch control: is the third party all right, and should I kill? Per service, the
 * failed share and latency over the last minute against the timeout, the breaker and since when,
 * in words and colour; an alert with the Kill button when a service is failing. Every count is
 * over the last minute of the per-second samples, so a kill's savings show as they are saved.
 * @param {{ state: () => AdminState }} deps
 */
export function createHealth({ state }) {
  /** @type {Sample[]} */
  let samples = [];

  /** @param {string} service @returns {ServiceWindow} */
  function windowOf(service) {
    const calls = { ok: 0, error: 0, timeout: 0, invalid: 0 };
    const skipped = { killed: 0, breaker_open: 0, over_capacity: 0, deferred: 0 };
    let ms = 0;
    for (const sample of samples) {
      const second = sample.services?.[service];
      if (!second) continue;
      for (const outcome of /** @type {(keyof CallsByOutcome)[]} */ (Object.keys(calls)))
        calls[outcome] += second.calls[outcome];
      for (const reason of /** @type {(keyof SkipsByReason)[]} */ (Object.keys(skipped)))
        skipped[reason] += second.skipped[reason];
      const made = second.calls.ok + second.calls.error + second.calls.timeout + second.calls.invalid;
      ms += (second.latencyMs ?? 0) * made;
    }
    const made = calls.ok + calls.error + calls.timeout + calls.invalid;
    return {
      calls,
      skipped,
      made,
      failed: made - calls.ok,
      latencyMs: made ? Math.round(ms / made) : null,
      seconds: samples.length,
    };
  }

  function render() {
    const { upstream, flags } = state();
    const killed = isKilled(flags.find((flag) => flag.key === KILL_SWITCH)?.definition);
    const rows = upstream.map((service) => {
      const window = windowOf(service.service);
      const health = healthOf(service, window);
      const share = window.made ? Math.round((100 * window.failed) / window.made) : 0;
      const figures = window.made
        ? `${share} % of ${window.made} calls failed, ${window.latencyMs} ms a call (timeout ${service.timeoutMs} ms)`
        : killed
          ? `no calls: the switch is killed; ${window.skipped.killed} not made`
          : 'no calls';
      return {
        service,
        health,
        node: el('li', { class: 'health-service', 'data-service': service.service, 'data-health': health }, [
          el('strong', {}, [`${service.service}: ${WORDS[health]}`]),
          el('span', {}, [` ${figures}; breaker ${service.breaker} for ${since(service.breakerSince)}`]),
        ]),
      };
    });
    $('health-services').replaceChildren(...rows.map((row) => row.node));
    // During a guarded restore, the top says where it stands too (the card below has the detail).
    const ramp = state().ramp;
    const rampLine = $('health-ramp');
    rampLine.hidden = ramp?.status !== 'running';
    if (ramp?.status === 'running')
      rampLine.textContent = `Guarded restore: stage ${ramp.stage + 1} of ${ramp.stages.length}, live for ${ramp.percent} % of viewers. Guard: ${ramp.guard?.verdict ?? 'watching the first calls'}.`;
    $('health-window').textContent = `over the last ${Math.min(WINDOW_SECONDS, samples.length) || WINDOW_SECONDS} s`;
    const failing = rows.filter((row) => row.health === 'failing');
    const alert = $('outage-alert');
    alert.hidden = failing.length === 0;
    if (failing.length === 0) return;
    const what = failing
      .map(({ service }) =>
        service.breaker === 'open'
          ? `the breaker for ${service.service} opened ${since(service.breakerSince)} ago`
          : `${service.service} is failing`,
      )
      .join('; ');
    $('outage-text').textContent = killed
      ? `The third party is failing (${what}). The switch is killed: no calls are made.`
      : `The third party is failing (${what}). Kill the switch to stop calling it; viewers keep the feed with fallbacks.`;
    $('outage-kill').hidden = killed;
  }

  $('outage-kill').addEventListener('click', () => $('switch-button').click());

  return {
    render,
    windowOf,
    /** @param {Sample[]} incoming */
    add(incoming) {
      samples = [...samples, ...incoming];
      const last = samples.at(-1);
      if (last) samples = samples.filter((sample) => sample.t > last.t - WINDOW_SECONDS);
      render();
    },
  };
}
