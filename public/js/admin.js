// @ts-check
import { KILL_SWITCH } from '../../protocol/flags.js';
import { createFlagApi } from './admin/api.js';
import { targetingSummary, variantText } from './admin/describe.js';
import { $, ago, el, message } from './admin/dom.js';
import { createTargetingEditor } from './admin/editor.js';
import { startExplain } from './admin/explain.js';
import { createHealth, WINDOW_SECONDS } from './admin/health.js';
import { createKillSwitchCard, who } from './admin/kill-switch.js';
import { createRampPanel } from './admin/ramp.js';
import { showConnection } from './connection.js';
import { startDashboard } from './dashboard.js';

/**
 * Launch control: the kill switch, who flipped it and when, how many browsers watch, the third
 * party's breakers, every flag and its targeting, and the audit, all live over Socket.IO. This
 * module wires the page's parts (admin/) to its state; each part renders from that state.
 */

/** @typedef {import('../../protocol/wire.js').AdminState} AdminState */

const storage = window.localStorage;
/** A read-only token watches: every control that would write stays disabled. */
const readOnly = document.body.dataset.scope === 'read-only';

/** @type {AdminState} */
let state = /** @type {AdminState} */ (JSON.parse($('initial-state').textContent || '{}'));
const flagOf = (/** @type {string} */ key) => state.flags.find((flag) => flag.key === key);

const api = createFlagApi({
  csrf: /** @type {HTMLMetaElement} */ (document.querySelector('meta[name=csrf-token]')).content,
  versionOf: (key) => flagOf(key)?.version,
  note: () => storage.getItem('admin-actor') || '',
});
const killSwitch = createKillSwitchCard({ state: () => state, api, readOnly });
const ramp = createRampPanel({ state: () => state, api, readOnly });
const health = createHealth({ state: () => state });
const editor = createTargetingEditor({ flagOf, api });
startExplain();

/** @param {Record<string, number>} values @param {string[]} names */
const counts = (values, names) =>
  names.map((name) =>
    el('span', { class: 'count' }, [el('b', {}, [String(values[name] ?? 0)]), ` ${name.replace('_', ' ')}`]),
  );

/**
 * A service's calls made and not made over the last minute, from the per-second samples: a kill's
 * savings count up as they happen.
 * @param {string} service
 */
function windowCounts(service) {
  const window = health.windowOf(service);
  return [
    el('div', { class: 'counts', 'data-counts': 'made' }, [
      el('span', { class: 'muted small' }, [`calls made, last ${WINDOW_SECONDS} s`]),
      ...counts(window.calls, ['ok', 'error', 'timeout', 'invalid']),
    ]),
    el('div', { class: 'counts', 'data-counts': 'not-made' }, [
      el('span', { class: 'muted small' }, [`not made, last ${WINDOW_SECONDS} s`]),
      ...counts(window.skipped, ['killed', 'breaker_open', 'over_capacity']),
    ]),
  ];
}

/** The third party's cards: each service's breaker, budget and last minute. */
function renderUpstream() {
  $('upstream-body').replaceChildren(
    ...state.upstream.map((service) =>
      el('div', { class: 'service', 'data-service': service.service }, [
        el('div', { class: 'service-head' }, [
          el('strong', {}, [service.service]),
          el('span', { class: `pill breaker-${service.breaker}`, 'data-breaker': service.breaker }, [
            `breaker ${service.breaker}`,
          ]),
        ]),
        budgetLine(service.service, service.budget),
        ...windowCounts(service.service),
      ]),
    ),
  );
}

/**
 * Each service's calls in flight against its cap, as the last second's figures have it (they come
 * once a second; the state only on a change).
 * @type {Record<string, { inUse: number, cap: number }>}
 */
let budgetNow = {};

/** @param {string} service @param {import('../../protocol/wire.js').BudgetState} budget */
function budgetLine(service, budget) {
  const { inUse, cap } = budgetNow[service] ?? budget;
  const scope =
    budget.scope === 'cluster'
      ? `cap for the cluster (${budget.instances} instance${budget.instances === 1 ? '' : 's'}), ${budget.held} held here`
      : 'cap for this instance';
  return el('div', { class: 'counts budget', 'data-budget': service, 'data-scope': budget.scope }, [
    el('span', { class: 'muted small' }, ['in flight']),
    el('meter', {
      min: '0',
      max: String(cap),
      value: String(Math.min(inUse, cap)),
      'aria-label': `${service} calls in flight`,
    }),
    el('span', { class: 'count' }, [el('b', { 'data-in-use': '' }, [String(inUse)]), ` of ${cap}`]),
    el('span', { class: 'muted small' }, [scope]),
  ]);
}

/** The budgets' lines follow each second's figures without redrawing the rest of the page. */
function showBudgets() {
  for (const [service, { inUse, cap }] of Object.entries(budgetNow)) {
    const line = document.querySelector(`[data-budget="${service}"]`);
    const meter = line?.querySelector('meter');
    const count = line?.querySelector('[data-in-use]');
    if (!meter || !count) continue;
    meter.max = cap;
    meter.value = Math.min(inUse, cap);
    count.textContent = String(inUse);
  }
}

/**
 * A flag's state in words: disabled is red only for the kill switch (killed); another flag off on
 * purpose serves its code default, which is no alarm.
 * @param {string} key @param {import('../../protocol/wire.js').FlagDefinition} d
 */
function statePill(key, d) {
  if (d.state === 'ENABLED') return el('span', { class: 'pill ok' }, ['Enabled']);
  return key === KILL_SWITCH
    ? el('span', { class: 'pill off' }, ['Disabled: killed'])
    : el('span', { class: 'pill neutral' }, ['Disabled: code default']);
}

function render() {
  // The `theme` flag restyles this page live too.
  if (document.documentElement.dataset.theme !== state.theme) document.documentElement.dataset.theme = state.theme;
  killSwitch.render();
  ramp.render();
  health.render();
  $('browsers').textContent = String(state.browsers);
  $('source-detail').textContent =
    `from ${state.source.kind}${state.source.writable ? '' : ' (read-only here)'}${state.source.ready ? '' : ` · ${state.source.detail}`}`;

  renderUpstream();
  const timeout = state.upstream[0]?.timeoutMs;
  // A call that times out is aborted at the timeout, so the mean can pass it only by our own delays.
  if (timeout) $('latency-label').textContent = `ms per call, last second (timeout ${timeout} ms)`;

  // A row rebuilt under the keyboard keeps its focus (Save, then the state that follows, redraws it).
  const focusedEdit = /** @type {HTMLElement | null} */ (document.activeElement)?.dataset?.edit;
  $('flags-body').replaceChildren(
    ...state.flags.map(({ key, version, definition: d, problem }) =>
      problem
        ? el('tr', { 'data-problem': 'true' }, [
            el('td', { 'data-label': 'Flag' }, [el('code', {}, [key])]),
            el('td', { 'data-label': 'State' }, [el('span', { class: 'pill off' }, ['Not served'])]),
            el('td', { colspan: '2', 'data-label': 'Why' }, [
              `${problem}: it answers its safe default until the flag file is fixed`,
            ]),
            el('td', { 'data-label': 'Version' }, [String(version)]),
            el('td', { 'data-label': '' }, ['']),
          ])
        : el('tr', {}, [
            el('td', { 'data-label': 'Flag' }, [el('code', {}, [key])]),
            el('td', { 'data-label': 'State' }, [d ? statePill(key, d) : 'in LaunchDarkly']),
            el('td', { 'data-label': 'Default' }, [
              !d ? '—' : typeof d.defaultVariant === 'string' ? variantText(d, d.defaultVariant) : 'code default',
            ]),
            el('td', { 'data-label': 'Targeting' }, [d ? targetingSummary(d) : '—']),
            el('td', { 'data-label': 'Version' }, [String(version)]),
            el('td', { 'data-label': '' }, [d ? editor.button(key, !state.source.writable || readOnly) : '']),
          ]),
    ),
  );

  if (focusedEdit)
    /** @type {HTMLElement | null} */ (document.querySelector(`#flags-body [data-edit="${focusedEdit}"]`))?.focus();

  $('audit-list').replaceChildren(
    ...(state.audit.length
      ? state.audit.map((entry) =>
          el('li', { class: 'audit-entry' }, [
            el('time', { datetime: entry.at, title: new Date(entry.at).toLocaleString() }, [ago(entry.at)]),
            el('span', {}, [el('code', {}, [entry.key]), ` ${entry.summary} → v${entry.version}`]),
            el('span', { class: 'muted' }, [
              `${who(entry.actor)} · ${entry.actor.source}${entry.actor.address ? ` · ${entry.actor.address}` : ''}`,
            ]),
          ]),
        )
      : [el('li', { class: 'muted' }, ['Nothing yet.'])]),
  );
}

// The note is not a credential: it is kept in this browser, and sent beside the session's name.
const actorForm = /** @type {HTMLFormElement} */ ($('actor-form'));
const actorInput = /** @type {HTMLInputElement} */ (actorForm.elements.namedItem('actor'));
actorInput.value = storage.getItem('admin-actor') || '';
actorInput.addEventListener('change', () => {
  const note = actorInput.value.trim();
  if (note) storage.setItem('admin-actor', note);
  else storage.removeItem('admin-actor');
  message('access-message', note ? 'Your changes will carry this note.' : 'No note.');
});
actorForm.addEventListener('submit', (event) => event.preventDefault());

render();
setInterval(render, 15_000); // keeps "x min ago" honest

// The session cookie goes with the handshake; the server checks it as it checks a token.
const socket = window.io({ transports: ['websocket', 'polling'], auth: { role: 'admin' } });
showConnection(socket);
// The channel refused (session ended) or closed (token revoked): say why, and offer to sign in again.
socket.on('connect_error', (/** @type {Error} */ error) => {
  if (!socket.active) killSwitch.deny(error.message);
});
socket.on('admin_denied', (/** @type {{ message: string }} */ info) => killSwitch.deny(info.message));
socket.on('admin_state', (/** @type {AdminState} */ next) => {
  state = next;
  render();
  dashboard.redraw();
});
const dashboard = startDashboard(socket, () => state.audit);
socket.on('admin_stats', (/** @type {import('../../protocol/wire.js').StatsSample[]} */ samples) => {
  health.add(samples);
  renderUpstream();
  const last = samples.at(-1);
  if (!last?.budget) return;
  budgetNow = last.budget;
  showBudgets();
});
socket.on('admin_browsers', (/** @type {number} */ count) => {
  state.browsers = count;
  $('browsers').textContent = String(count);
});
