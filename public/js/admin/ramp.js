// @ts-check
import { isKilled, KILL_SWITCH } from '../../../protocol/flags.js';
import { RAMP_DEFAULTS } from '../../../protocol/ramp.js';
import { $, ago, el, message } from './dom.js';

/** @typedef {import('../../../protocol/wire.js').AdminState} AdminState */
/** @typedef {import('../../../protocol/ramp.js').Ramp} Ramp */
/** @typedef {import('./api.js').FlagApi} FlagApi */

/** A ramp that ended longer ago than this is no longer shown at the top. */
const SHOWN_AFTER_END_MS = 30 * 60_000;

/** A no-break space: "100 %" never splits across lines. */
const NBSP = '\u00a0';
const percent = (/** @type {number} */ share) => `${Math.round(share * 1000) / 10}${NBSP}%`;
const list = (/** @type {number[]} */ stages) =>
  stages.length <= 1 ? `${stages.join('')}${NBSP}%` : `${stages.slice(0, -1).join(', ')} and ${stages.at(-1)}${NBSP}%`;

/**
 * What the settings will do, in words, for the dialog.
 * @param {{ stages: number[], holdMs: number, maxErrorRate: number, minCalls: number }} s
 */
export function rampPlanText(s) {
  const first = s.stages[0];
  const rest = s.stages.slice(1);
  return (
    `Live for ${first}${NBSP}% of viewers first${rest.length ? `, then ${list(rest)}` : ''}, each stage held ${s.holdMs / 1000} s. ` +
    `If more than ${percent(s.maxErrorRate)} of third-party calls fail (judged over at least ${s.minCalls} calls) ` +
    'or a circuit breaker opens, everyone is killed again at once. A kill from here stops it at any time.'
  );
}

/** @param {Ramp} ramp */
function headline(ramp) {
  const stage = `stage ${ramp.stage + 1} of ${ramp.stages.length}`;
  switch (ramp.status) {
    case 'running':
      return ramp.percent > 0
        ? `Restoring gradually: ${stage}, live for ${ramp.percent}${NBSP}% of viewers`
        : 'Restoring gradually: starting';
    case 'completed':
      return 'Guarded restore completed: live for everyone';
    case 'rolled-back':
      return `Rolled back at ${stage}: everyone killed again`;
    default:
      return `Guarded restore stopped at ${stage}`;
  }
}

/**
 * The guarded restore: "Restore gradually" beside the restore, its dialog (the stages, the hold,
 * the guard's limits, said in words), and while it runs, at the top of the card, the stage, the
 * share live, the guard's figures per service against their limits and the time to the next
 * stage; after a rollback, why.
 * @param {{ state: () => AdminState, api: FlagApi, readOnly: boolean }} deps
 */
export function createRampPanel({ state, api, readOnly }) {
  const button = /** @type {HTMLButtonElement} */ ($('ramp-button'));
  const dialog = /** @type {HTMLDialogElement} */ ($('ramp-dialog'));
  const form = /** @type {HTMLFormElement} */ ($('ramp-form'));
  const field = (/** @type {string} */ name) => /** @type {HTMLInputElement} */ (form.elements.namedItem(name));
  field('stages').value = RAMP_DEFAULTS.stages.join(', ');
  field('hold').value = String(RAMP_DEFAULTS.holdMs / 1000);
  field('maxErrorRate').value = String(RAMP_DEFAULTS.maxErrorRate * 100);
  field('minCalls').value = String(RAMP_DEFAULTS.minCalls);

  const settings = () => ({
    stages: field('stages')
      .value.split(/[\s,]+/)
      .filter(Boolean)
      .map((stage) => Number(stage.replace(/%$/, ''))),
    holdMs: Math.round(Number(field('hold').value) * 1000),
    maxErrorRate: Number(field('maxErrorRate').value) / 100,
    minCalls: Number(field('minCalls').value),
  });
  const describe = () => ($('ramp-plan').textContent = rampPlanText(settings()));
  form.addEventListener('input', describe);

  button.addEventListener('click', () => {
    describe();
    dialog.returnValue = '';
    dialog.showModal();
  });
  dialog.addEventListener('close', async () => {
    if (dialog.returnValue !== 'confirm') return;
    const result = await api.ramp(settings());
    message('switch-message', result.text, !result.ok);
  });

  /** The seconds to the next stage, counted here between the server's updates. */
  function countdown() {
    const ramp = state().ramp;
    const next = $('ramp-next');
    if (ramp?.status !== 'running' || !ramp.nextStageAt) return void (next.textContent = '');
    const seconds = Math.max(0, Math.ceil((Date.parse(ramp.nextStageAt) - Date.now()) / 1000));
    const last = ramp.stage === ramp.stages.length - 1;
    next.textContent =
      seconds > 0
        ? `${last ? 'Completes' : `Next stage (${ramp.stages[ramp.stage + 1]}${NBSP}%)`} in ${seconds} s, if the guard agrees.`
        : ramp.guard?.enough === false
          ? 'The hold is over; waiting for enough calls to judge.'
          : 'The hold is over; moving on.';
  }
  setInterval(countdown, 1000);

  function render() {
    const { ramp, source, flags } = state();
    const killSwitch = flags.find((flag) => flag.key === KILL_SWITCH);
    const running = ramp?.status === 'running';
    const restorable = Boolean(killSwitch?.definition) && isKilled(killSwitch?.definition) && !killSwitch?.problem;
    button.hidden = !restorable || running;
    button.disabled = !source.writable || readOnly;
    button.title = readOnly ? 'Read-only: you can watch a guarded restore, not start one.' : '';

    const panel = $('ramp-panel');
    const shown = ramp && (running || Date.now() - Date.parse(ramp.endedAt ?? ramp.startedAt) < SHOWN_AFTER_END_MS);
    panel.hidden = !shown;
    if (!ramp || !shown) return;
    panel.dataset.status = ramp.status;
    $('ramp-title').textContent = headline(ramp);
    $('ramp-stages').replaceChildren(
      ...ramp.stages.map((share, n) =>
        el(
          'li',
          {
            'data-stage':
              n < ramp.stage || (n === ramp.stage && ramp.status === 'completed')
                ? 'done'
                : n === ramp.stage
                  ? 'current'
                  : 'next',
            ...(n === ramp.stage ? { 'aria-current': 'step' } : {}),
          },
          [`${share}${NBSP}%`],
        ),
      ),
    );
    const services = Object.entries(ramp.guard?.services ?? {});
    $('ramp-guard').replaceChildren(
      ...services.map(([service, figures]) => {
        const failedShare = figures.calls ? figures.failed / figures.calls : 0;
        const over = figures.calls >= ramp.minCalls && figures.calls > 0 && failedShare > ramp.maxErrorRate;
        const needed = figures.calls < ramp.minCalls ? ` (${ramp.minCalls} needed to judge)` : '';
        return el('li', { 'data-service': service }, [
          el('strong', {}, [service]),
          `: ${figures.calls} call${figures.calls === 1 ? '' : 's'}${needed}, `,
          el('span', over ? { class: 'bad' } : {}, [
            `${figures.failed} failed (${percent(failedShare)}, limit ${percent(ramp.maxErrorRate)})`,
          ]),
          ', breaker ',
          el('span', figures.breakerOpened ? { class: 'bad' } : {}, [figures.breakerOpened ? 'opened' : 'closed']),
        ]);
      }),
    );
    $('ramp-guard').hidden = services.length === 0 || !running;
    const started = `Started ${ago(ramp.startedAt)} by ${ramp.actor.name}${ramp.actor.note ? ` (${ramp.actor.note})` : ''}.`;
    $('ramp-verdict').textContent = running
      ? `${ramp.guard ? `Guard: ${ramp.guard.verdict}.` : 'Guard: watching the first calls.'} ${started}`
      : ramp.status === 'completed'
        ? `The last stage: ${ramp.reason ?? 'held'}. ${started}`
        : `Why: ${ramp.reason ?? 'not recorded'}. ${started}`;
    countdown();
  }

  return { render };
}
