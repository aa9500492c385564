// @ts-check
import { showConnection } from './connection.js';
import { startDashboard } from './dashboard.js';
import { switchState } from './switch-state.js';
import { buildTargeting, checkRules, emptyRules, mergePatchFor, parseTargeting } from './targeting.js';

/**
 * Launch control: the kill switch, who flipped it and when, and how many browsers watch, all
 * live over Socket.IO. Writes go through the same API as `npm run flag`, carried by the page's
 * session (an HttpOnly cookie no script can read) with its CSRF token. Everything is rendered
 * with textContent: no data is ever parsed as HTML.
 */
const KILL_SWITCH = 'show-avatars-and-reccs';
const storage = window.localStorage;
const csrf = /** @type {HTMLMetaElement} */ (document.querySelector('meta[name=csrf-token]')).content;
/** A read-only token watches: every control that would write stays disabled. */
const readOnly = document.body.dataset.scope === 'read-only';

/** @typedef {{ state: string, defaultVariant: string, variants: Record<string, unknown>, targeting?: object }} FlagDefinition */
/** @typedef {{ key: string, version: number, description?: string, definition: FlagDefinition | null }} FlagRecord */
/** @typedef {{ source: string, name: string, note?: string, address?: string }} Actor */
/** @typedef {{ id: string, at: string, key: string, version: number, summary: string, actor: Actor }} AuditEntry */
/** @typedef {{ service: string, breaker: string, calls: Record<string, number>, skipped: Record<string, number> }} UpstreamState */
/** @typedef {{ source: { kind: string, writable: boolean, ready: boolean, detail: string }, flags: FlagRecord[], audit: AuditEntry[], browsers: number, upstream: UpstreamState[] }} AdminState */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** @type {AdminState} */
let state = JSON.parse($('initial-state').textContent || '{}');

/**
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {(Node | string)[]} [children]
 */
function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/** @param {string} iso */
function ago(iso) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

/** @type {Record<string, string>} */
const VIA = { admin: 'from the admin page', cli: 'from the command line', api: 'through the API', file: 'in the flag file', auto: 'automatically', system: 'by the system' };

/** The token's name, and the note its holder added ("admin (Maya, on call)"). */
function who(/** @type {Actor} */ actor) {
  return actor.note ? `${actor.name} (${actor.note})` : actor.name;
}

function killSwitch() {
  return state.flags.find((flag) => flag.key === KILL_SWITCH);
}

/** Killed = disabled, or serving `false` by default with no targeting: off for everyone. */
function isKilled(/** @type {FlagRecord | undefined} */ flag) {
  if (!flag?.definition) return true;
  const { state: flagState, variants, defaultVariant, targeting } = flag.definition;
  return flagState === 'DISABLED' || (variants[defaultVariant] === false && !targeting);
}

function render() {
  const flag = killSwitch();
  const definition = flag?.definition;
  const title = $('switch-title');
  const button = /** @type {HTMLButtonElement} */ ($('switch-button'));
  if (flag && !definition) {
    // A read-only source: the switch lives in LaunchDarkly.
    title.dataset.state = 'external';
    title.textContent = `Managed in ${state.source.kind === 'launchdarkly' ? 'LaunchDarkly' : state.source.kind}`;
    $('switch-detail').textContent = `Flip ${KILL_SWITCH} in your LaunchDarkly project; every open browser follows within milliseconds. Version ${flag.version} here.`;
    button.disabled = true;
    button.textContent = 'Read-only here';
    button.className = 'switch-button';
  } else {
    // What is true for viewers (killed, live, or partly killed and for whom); the button does
    // what one press can: restore a plain kill, or kill for everyone.
    const said = definition ? switchState(definition) : { state: 'killed', headline: 'Killed: third party off', detail: 'The flag is missing: the app treats it as killed.' };
    const restorable = isKilled(flag);
    title.dataset.state = said.state;
    title.textContent = said.headline;
    $('switch-detail').textContent = definition ? `${said.detail} Version ${flag?.version}.` : said.detail;
    button.disabled = !flag || !state.source.writable || readOnly;
    button.textContent = restorable ? 'Restore third-party content' : said.state === 'live' ? 'Kill third-party content' : 'Kill for everyone';
    button.className = `switch-button ${restorable ? 'restore' : 'kill'}`;
  }
  const last = state.audit.find((entry) => entry.key === KILL_SWITCH);
  $('switch-last').textContent = last
    ? `Last change: ${last.summary}, by ${who(last.actor)} ${VIA[last.actor.source] ?? `via ${last.actor.source}`}, ${ago(last.at)}`
    : state.source.writable ? 'No change recorded yet.' : '';
  $('browsers').textContent = String(state.browsers);
  $('source-detail').textContent = `from ${state.source.kind}${state.source.writable ? '' : ' (read-only here)'}${state.source.ready ? '' : ` · ${state.source.detail}`}`;

  const counts = (/** @type {Record<string, number>} */ values, /** @type {string[]} */ names) =>
    names.map((name) => el('span', { class: 'count' }, [el('b', {}, [String(values[name] ?? 0)]), ` ${name.replace('_', ' ')}`]));
  $('upstream-body').replaceChildren(
    ...state.upstream.map((service) =>
      el('div', { class: 'service', 'data-service': service.service }, [
        el('div', { class: 'service-head' }, [
          el('strong', {}, [service.service]),
          el('span', { class: `pill breaker-${service.breaker}`, 'data-breaker': service.breaker }, [`breaker ${service.breaker}`]),
        ]),
        el('div', { class: 'counts' }, [el('span', { class: 'muted small' }, ['calls made']), ...counts(service.calls, ['ok', 'error', 'timeout', 'invalid'])]),
        el('div', { class: 'counts' }, [el('span', { class: 'muted small' }, ['not made']), ...counts(service.skipped, ['killed', 'breaker_open', 'over_capacity'])]),
      ]),
    ),
  );

  $('flags-body').replaceChildren(
    ...state.flags.map(({ key, version, definition: d }) =>
      el('tr', {}, [
        el('td', {}, [el('code', {}, [key])]),
        el('td', {}, [d ? el('span', { class: `pill ${d.state === 'ENABLED' ? 'ok' : 'off'}` }, [d.state]) : 'in LaunchDarkly']),
        el('td', {}, [d ? `${d.defaultVariant} = ${JSON.stringify(d.variants[d.defaultVariant])}` : '—']),
        el('td', {}, [d?.targeting ? 'yes' : '—']),
        el('td', {}, [String(version)]),
        el('td', {}, [d ? editButton(key) : '']),
      ]),
    ),
  );

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

/** @param {string} id @param {string} text @param {boolean} [error] */
function message(id, text, error = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle('error', error);
}

/**
 * PATCHes a flag through the API, with If-Match on the version this page shows.
 * @param {string} key
 * @param {Record<string, unknown>} patch
 * @returns {Promise<{ ok: boolean, text: string }>}
 */
async function patchFlag(key, patch) {
  const flag = state.flags.find((f) => f.key === key);
  if (!flag) return { ok: false, text: `Unknown flag ${key}.` };
  const started = performance.now();
  const response = await fetch(`/api/flags/${encodeURIComponent(key)}`, {
    method: 'PATCH',
    credentials: 'same-origin',
    headers: {
      'content-type': 'application/merge-patch+json',
      'if-match': `"${flag.version}"`,
      'x-csrf-token': csrf,
      'x-actor': storage.getItem('admin-actor') || '',
      'x-change-source': 'admin',
    },
    body: JSON.stringify(patch),
  });
  const body = await response.json().catch(() => ({}));
  if (response.ok) return { ok: true, text: `Done in ${Math.round(performance.now() - started)} ms. Every open browser has been told.` };
  if (response.status === 401) return { ok: false, text: 'Your session has ended. Reload the page to sign in again.' };
  if (response.status === 412) return { ok: false, text: 'Someone changed this flag first; the page now shows their change. Try again if still needed.' };
  return { ok: false, text: body.message || `Failed with HTTP ${response.status}.` };
}

/** @param {Record<string, unknown>} patch */
async function patchKillSwitch(patch) {
  const result = await patchFlag(KILL_SWITCH, patch);
  message('switch-message', result.text, !result.ok);
}

const dialog = /** @type {HTMLDialogElement} */ ($('confirm-dialog'));
$('switch-button').addEventListener('click', () => {
  const killing = !isKilled(killSwitch());
  $('confirm-title').textContent = killing ? 'Kill third-party content?' : 'Restore third-party content?';
  $('confirm-text').textContent = killing
    ? 'Every open browser switches to fallback avatars and generic recommendations at once, and the app stops calling the third party.'
    : 'Browsers bring back live avatars and recommendations over the next few seconds (spread out, so the third party is not stampeded).';
  const confirmButton = $('confirm-button');
  confirmButton.textContent = killing ? 'Kill now' : 'Restore now';
  confirmButton.className = killing ? 'danger' : 'primary';
  dialog.returnValue = '';
  dialog.showModal();
});
dialog.addEventListener('close', () => {
  if (dialog.returnValue !== 'confirm') return;
  const flag = killSwitch();
  if (!isKilled(flag)) return void patchKillSwitch({ state: 'DISABLED' });
  // Restoring re-enables the flag; if it was killed by serving `false` by default, serve `true` again.
  /** @type {Record<string, unknown>} */
  const patch = { state: 'ENABLED' };
  const variants = flag?.definition?.variants ?? {};
  if (variants[flag?.definition?.defaultVariant ?? ''] === false && !flag?.definition?.targeting) {
    const on = Object.keys(variants).find((name) => variants[name] === true);
    if (on) patch.defaultVariant = on;
  }
  void patchKillSwitch(patch);
});

const actorForm = /** @type {HTMLFormElement} */ ($('actor-form'));
const actorInput = /** @type {HTMLInputElement} */ (actorForm.elements.namedItem('actor'));
actorInput.value = storage.getItem('admin-actor') || '';
// The note is not a credential: it is kept in this browser, and sent beside the session's name.
actorInput.addEventListener('change', () => {
  const note = actorInput.value.trim();
  if (note) storage.setItem('admin-actor', note);
  else storage.removeItem('admin-actor');
  message('access-message', note ? 'Your changes will carry this note.' : 'No note.');
});
actorForm.addEventListener('submit', (event) => event.preventDefault());

// ---- The targeting editor: rules in a form, flagd JSON out. ----
const editor = /** @type {HTMLDialogElement} */ ($('editor-dialog'));
const editorForm = /** @type {HTMLFormElement} */ ($('editor-form'));
/** @type {{ key: string, variants: string[], rules: import('./targeting.js').TargetingRules } | undefined} */
let editing;

/** @param {string} key */
function editButton(key) {
  const button = el('button', { type: 'button', class: 'quiet', 'data-edit': key, 'aria-label': `Target ${key}` }, ['Target…']);
  button.addEventListener('click', () => openEditor(key));
  if (!state.source.writable || readOnly) button.setAttribute('disabled', '');
  return button;
}

/** @param {string[]} variants @param {string} selected */
function variantSelect(variants, selected) {
  const select = /** @type {HTMLSelectElement} */ (el('select', { 'aria-label': 'Variant' }, variants.map((v) => el('option', { value: v }, [v]))));
  select.value = selected;
  return select;
}

function editorPatch() {
  if (!editing) return {};
  const data = new FormData(editorForm);
  const current = state.flags.find((f) => f.key === editing?.key)?.definition?.targeting ?? null;
  return {
    state: String(data.get('state')),
    defaultVariant: String(data.get('defaultVariant')),
    targeting: mergePatchFor(current, buildTargeting(editing.rules)),
  };
}

function renderEditor() {
  if (!editing) return;
  const { rules, variants } = editing;
  const removeButton = (/** @type {() => void} */ remove) => {
    const button = el('button', { type: 'button', class: 'quiet small-button', 'aria-label': 'Remove' }, ['✕']);
    button.addEventListener('click', () => { remove(); renderEditor(); });
    return button;
  };
  $('editor-overrides').replaceChildren(...rules.overrides.map((rule, index) => {
    const input = /** @type {HTMLInputElement} */ (el('input', { list: 'viewer-keys', placeholder: 'viewer key', value: rule.key, 'aria-label': 'Viewer key', name: `override-key-${index}` }));
    input.addEventListener('input', () => { rule.key = input.value.trim(); preview(); });
    const select = variantSelect(variants, rule.variant);
    select.addEventListener('change', () => { rule.variant = select.value; preview(); });
    return el('div', { class: 'rule' }, [input, select, removeButton(() => rules.overrides.splice(index, 1))]);
  }));
  $('editor-groups').replaceChildren(...rules.groups.map((rule, index) => {
    const input = /** @type {HTMLInputElement} */ (el('input', { list: 'group-names', placeholder: 'group', value: rule.group, 'aria-label': 'Group', name: `group-${index}` }));
    input.addEventListener('input', () => { rule.group = input.value.trim(); preview(); });
    const select = variantSelect(variants, rule.variant);
    select.addEventListener('change', () => { rule.variant = select.value; preview(); });
    return el('div', { class: 'rule' }, [input, select, removeButton(() => rules.groups.splice(index, 1))]);
  }));
  /** @type {HTMLInputElement} */ (editorForm.elements.namedItem('rollout')).checked = rules.rollout !== null;
  $('editor-rollout').replaceChildren(...(rules.rollout ?? []).map((share) => {
    const input = /** @type {HTMLInputElement} */ (el('input', { type: 'number', min: '0', max: '100', step: '1', value: String(share.weight), 'aria-label': `Share of ${share.variant}`, name: `share-${share.variant}` }));
    input.addEventListener('input', () => { share.weight = Number(input.value); preview(); });
    return el('div', { class: 'rule share' }, [el('span', {}, [share.variant]), input, el('span', { class: 'muted' }, ['%'])]);
  }));
  preview();
}

/** JSON with object members sorted: two definitions that say the same thing read the same. */
function canonical(/** @type {unknown} */ value) {
  return JSON.stringify(value, (_, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v));
}

/** The flag's definition as saving would leave it (not the patch): what the preview shows. */
function resultingDefinition() {
  const current = state.flags.find((f) => f.key === editing?.key)?.definition;
  if (!editing || !current) return undefined;
  const data = new FormData(editorForm);
  const { targeting: _old, ...rest } = current;
  const targeting = buildTargeting(editing.rules);
  return { ...rest, state: String(data.get('state')), defaultVariant: String(data.get('defaultVariant')), ...(targeting ? { targeting } : {}) };
}

function preview() {
  if (!editing) return;
  const current = state.flags.find((f) => f.key === editing?.key)?.definition;
  const result = resultingDefinition();
  $('editor-preview').textContent = JSON.stringify(result, null, 2);
  const problem = checkRules(editing.rules, editing.variants);
  const unchanged = !problem && canonical(result) === canonical(current);
  /** @type {HTMLButtonElement} */ ($('editor-save')).disabled = unchanged || Boolean(problem);
  message('editor-message', problem || (unchanged ? 'Nothing to save: this is the flag as it is now.' : ''), Boolean(problem));
}

/** @param {string} key */
function openEditor(key) {
  const flag = state.flags.find((f) => f.key === key);
  const definition = flag?.definition;
  if (!flag || !definition) return;
  const variants = Object.keys(definition.variants);
  const parsed = parseTargeting(definition.targeting);
  const rules = parsed ?? emptyRules();
  // Every variant gets a row in a rollout, even those at 0 % (which are not written).
  if (rules.rollout) {
    const shares = rules.rollout;
    rules.rollout = variants.map((variant) => shares.find((share) => share.variant === variant) ?? { variant, weight: 0 });
  }
  editing = { key, variants, rules };
  $('editor-key').textContent = key;
  $('editor-description').textContent = flag.description ?? '';
  $('editor-custom').hidden = parsed !== undefined;
  /** @type {HTMLSelectElement} */ (editorForm.elements.namedItem('state')).value = definition.state;
  const defaultSelect = /** @type {HTMLSelectElement} */ (editorForm.elements.namedItem('defaultVariant'));
  defaultSelect.replaceChildren(...variants.map((v) => el('option', { value: v }, [`${v} = ${JSON.stringify(definition.variants[v])}`])));
  defaultSelect.value = definition.defaultVariant;
  renderEditor();
  editor.showModal();
}

$('add-override').addEventListener('click', () => {
  editing?.rules.overrides.push({ key: '', variant: editing.variants[0] ?? '' });
  renderEditor();
  /** @type {HTMLInputElement | null} */ (document.querySelector('#editor-overrides .rule:last-child input'))?.focus();
});
$('add-group').addEventListener('click', () => {
  editing?.rules.groups.push({ group: '', variant: editing.variants[0] ?? '' });
  renderEditor();
  /** @type {HTMLInputElement | null} */ (document.querySelector('#editor-groups .rule:last-child input'))?.focus();
});
/** @type {HTMLInputElement} */ (editorForm.elements.namedItem('rollout')).addEventListener('change', (event) => {
  if (!editing) return;
  const on = /** @type {HTMLInputElement} */ (event.target).checked;
  const [first, ...rest] = editing.variants;
  editing.rules.rollout = on ? [{ variant: first ?? '', weight: 100 }, ...rest.map((variant) => ({ variant, weight: 0 }))] : null;
  renderEditor();
});
editorForm.addEventListener('change', preview);
$('editor-cancel').addEventListener('click', () => editor.close());
editorForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  if (!editing) return;
  const problem = checkRules(editing.rules, editing.variants);
  if (problem) return message('editor-message', problem, true);
  const result = await patchFlag(editing.key, editorPatch());
  if (!result.ok) return message('editor-message', result.text, true);
  editor.close();
  message('flags-message', `${editing.key}: ${result.text}`);
});

// ---- Explain: what one viewer gets, and why. ----
const explainForm = /** @type {HTMLFormElement} */ ($('explain-form'));
explainForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const user = String(new FormData(explainForm).get('user') || '').trim();
  const response = await fetch(`/api/explain?user=${encodeURIComponent(user)}`, { credentials: 'same-origin' });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    $('explain-table').hidden = true;
    return message('explain-message', body.message || `Failed with HTTP ${response.status}.`, true);
  }
  message('explain-message', `As ${body.context.name}${body.context.groups.length ? ` (${body.context.groups.join(', ')})` : ''}:`);
  $('explain-table').hidden = false;
  $('explain-body').replaceChildren(
    ...body.flags.map((/** @type {{ key: string, value: unknown, variant?: string, reason: string, errorCode?: string, because: string }} */ f) =>
      el('tr', { 'data-flag': f.key }, [
        el('td', {}, [el('code', {}, [f.key])]),
        el('td', {}, [JSON.stringify(f.value)]),
        el('td', {}, [f.variant ?? '—']),
        el('td', {}, [el('span', { class: 'reason' }, [f.reason]), f.errorCode ? ` ${f.errorCode}` : '', el('span', { class: 'because muted small' }, [` ${f.because}`])]),
      ]),
    ),
  );
});

render();
setInterval(render, 15_000); // keeps "x min ago" honest

// @ts-ignore: served by our own server at /socket.io/socket.io.min.js
// The session cookie goes with the handshake; the server checks it as it checks a token.
const socket = window.io({ transports: ['websocket', 'polling'], auth: { role: 'admin' } });
showConnection(socket);
/** The channel refused (session ended) or closed (token revoked): say why, and offer to sign in again. */
function denied(/** @type {string} */ why) {
  message('switch-message', `${why} Reload the page to sign in again.`, true);
  /** @type {HTMLButtonElement} */ ($('switch-button')).disabled = true;
}
socket.on('connect_error', (/** @type {Error} */ error) => {
  if (!socket.active) denied(error.message);
});
socket.on('admin_denied', (/** @type {{ message: string }} */ info) => denied(info.message));
socket.on('admin_state', (/** @type {AdminState} */ next) => {
  state = next;
  render();
  dashboard.redraw();
});
const dashboard = startDashboard(socket, () => state.audit);
socket.on('admin_browsers', (/** @type {number} */ count) => {
  state.browsers = count;
  $('browsers').textContent = String(count);
});
