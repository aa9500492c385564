// @ts-check
import { buildTargeting, checkRules, emptyRules, mergePatchFor, parseTargeting } from '../../../protocol/targeting.js';
import { KILL_SWITCH } from '../../../protocol/flags.js';
import { switchState } from '../switch-state.js';
import { notSentText } from './api.js';
import { targetingSummary, variantText } from './describe.js';
import { $, el, message } from './dom.js';

/** @typedef {import('../../../protocol/wire.js').AdminFlag} AdminFlag */
/** @typedef {import('./api.js').FlagApi} FlagApi */
/** @typedef {import('../../../protocol/wire.js').FlagDefinition} FlagDefinition */

/** JSON with object members sorted: two definitions that say the same thing read the same. */
/**
 * A definition in one or two sentences: for the kill switch, who is killed and who is live; for
 * another flag, its state, its default and its targeting.
 * @param {string} key @param {FlagDefinition} d
 */
function inWords(key, d) {
  if (key === KILL_SWITCH) return switchState(d).detail;
  if (d.state === 'DISABLED') return 'disabled: every viewer gets the code default.';
  const fallback = typeof d.defaultVariant === 'string' ? variantText(d, d.defaultVariant) : 'the code default';
  return d.targeting ? `${targetingSummary(d)}; otherwise ${fallback}.` : `${fallback} for everyone.`;
}

function canonical(/** @type {unknown} */ value) {
  return JSON.stringify(value, (_, /** @type {unknown} */ v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

/**
 * The targeting editor: a flag's rules in a form (viewers, groups, a percentage rollout), flagd
 * JSON out. It previews the definition as saving would leave it, says when nothing would change,
 * and saves a merge patch with If-Match.
 * @param {{ flagOf: (key: string) => AdminFlag | undefined, api: FlagApi }} deps
 */
export function createTargetingEditor({ flagOf, api }) {
  const dialog = /** @type {HTMLDialogElement} */ ($('editor-dialog'));
  const form = /** @type {HTMLFormElement} */ ($('editor-form'));
  /** @type {{ key: string, variants: string[], rules: import('../../../protocol/targeting.js').TargetingRules } | undefined} */
  let editing;

  const field = (/** @type {string} */ name) =>
    /** @type {HTMLInputElement & HTMLSelectElement} */ (form.elements.namedItem(name));

  /** @param {string[]} variants @param {string} selected */
  function variantSelect(variants, selected) {
    const select = /** @type {HTMLSelectElement} */ (
      el(
        'select',
        { 'aria-label': 'Variant' },
        variants.map((v) => el('option', { value: v }, [v])),
      )
    );
    select.value = selected;
    return select;
  }

  /** The default the form names: a variant, or none (the code's default, flagd's null). */
  const chosenDefault = () => field('defaultVariant').value || null;

  /** The merge patch saving sends: state, default, and the targeting's change. */
  function patch() {
    if (!editing) return {};
    const current = flagOf(editing.key)?.definition?.targeting ?? null;
    return {
      state: field('state').value,
      defaultVariant: chosenDefault(),
      targeting: mergePatchFor(current, buildTargeting(editing.rules)),
    };
  }

  /** The flag's definition as saving would leave it (not the patch): what the preview shows. */
  function resulting() {
    const current = editing && flagOf(editing.key)?.definition;
    if (!editing || !current) return undefined;
    const { targeting: _old, defaultVariant: _default, ...rest } = current;
    const targeting = buildTargeting(editing.rules);
    const defaultVariant = chosenDefault();
    // None: the patch's null removes the member (a merge patch's way), which flagd reads as none.
    return {
      ...rest,
      state: field('state').value,
      ...(defaultVariant === null ? {} : { defaultVariant }),
      ...(targeting ? { targeting } : {}),
    };
  }

  function preview() {
    if (!editing) return;
    const result = resulting();
    $('editor-preview').textContent = JSON.stringify(result, null, 2);
    const current = flagOf(editing.key)?.definition;
    $('editor-summary').textContent =
      current && result
        ? `Now: ${inWords(editing.key, current)} After saving: ${inWords(editing.key, /** @type {FlagDefinition} */ (result))}`
        : '';
    const problem = checkRules(editing.rules, editing.variants);
    const unchanged = !problem && canonical(result) === canonical(flagOf(editing.key)?.definition);
    /** @type {HTMLButtonElement} */ ($('editor-save')).disabled = unchanged || Boolean(problem);
    message(
      'editor-message',
      problem || (unchanged ? 'Nothing to save: this is the flag as it is now.' : ''),
      Boolean(problem),
    );
  }

  /**
   * A rule's row: a text input (with suggestions), the variant it gets, and a remove button.
   * @param {{ list: string, placeholder: string, label: string, name: string, value: string, variant: string }} spec
   * @param {(text: string) => void} setText @param {(variant: string) => void} setVariant @param {() => void} remove
   */
  function ruleRow(spec, setText, setVariant, remove) {
    const input = /** @type {HTMLInputElement} */ (
      el('input', {
        list: spec.list,
        placeholder: spec.placeholder,
        value: spec.value,
        'aria-label': spec.label,
        name: spec.name,
      })
    );
    input.addEventListener('input', () => {
      setText(input.value.trim());
      preview();
    });
    const select = variantSelect(editing?.variants ?? [], spec.variant);
    select.addEventListener('change', () => {
      setVariant(select.value);
      preview();
    });
    const removeButton = el(
      'button',
      {
        type: 'button',
        class: 'quiet small-button',
        'aria-label': `Remove ${spec.label.toLowerCase()} ${spec.value}`.trim(),
      },
      ['✕'],
    );
    removeButton.addEventListener('click', () => {
      remove();
      render();
    });
    return el('div', { class: 'rule' }, [input, select, removeButton]);
  }

  function render() {
    if (!editing) return;
    const { rules } = editing;
    $('editor-overrides').replaceChildren(
      ...rules.overrides.map((rule, index) =>
        ruleRow(
          {
            list: 'viewer-keys',
            placeholder: 'viewer key',
            label: 'Viewer key',
            name: `override-key-${index}`,
            value: rule.key,
            variant: rule.variant,
          },
          (text) => (rule.key = text),
          (variant) => (rule.variant = variant),
          () => rules.overrides.splice(index, 1),
        ),
      ),
    );
    $('editor-groups').replaceChildren(
      ...rules.groups.map((rule, index) =>
        ruleRow(
          {
            list: 'group-names',
            placeholder: 'group',
            label: 'Group',
            name: `group-${index}`,
            value: rule.group,
            variant: rule.variant,
          },
          (text) => (rule.group = text),
          (variant) => (rule.variant = variant),
          () => rules.groups.splice(index, 1),
        ),
      ),
    );
    field('rollout').checked = rules.rollout !== null;
    $('editor-rollout').replaceChildren(
      ...(rules.rollout ?? []).map((share) => {
        const input = /** @type {HTMLInputElement} */ (
          el('input', {
            type: 'number',
            min: '0',
            max: '100',
            step: '1',
            value: String(share.weight),
            'aria-label': `Share of ${share.variant}`,
            name: `share-${share.variant}`,
          })
        );
        input.addEventListener('input', () => {
          share.weight = Number(input.value);
          preview();
        });
        return el('div', { class: 'rule share' }, [
          el('span', {}, [share.variant]),
          input,
          el('span', { class: 'muted' }, ['%']),
        ]);
      }),
    );
    preview();
  }

  /** @param {string} key */
  function open(key) {
    const flag = flagOf(key);
    const definition = flag?.definition;
    if (!flag || !definition) return;
    const variants = Object.keys(definition.variants);
    const parsed = parseTargeting(definition.targeting);
    const rules = parsed ?? emptyRules();
    // Every variant gets a row in a rollout, even those at 0 % (which are not written).
    if (rules.rollout) {
      const shares = rules.rollout;
      rules.rollout = variants.map(
        (variant) => shares.find((share) => share.variant === variant) ?? { variant, weight: 0 },
      );
    }
    editing = { key, variants, rules };
    $('editor-key').textContent = key;
    $('editor-description').textContent = flag.description ?? '';
    $('editor-custom').hidden = parsed !== undefined;
    field('state').value = definition.state;
    const defaultSelect = field('defaultVariant');
    defaultSelect.replaceChildren(
      ...variants.map((v) => el('option', { value: v }, [`${v} = ${JSON.stringify(definition.variants[v])}`])),
      el('option', { value: '' }, ["none: the code's safe default"]),
    );
    defaultSelect.value = definition.defaultVariant ?? '';
    render();
    dialog.showModal();
  }

  /** Adds an empty rule to `list` and puts the cursor in it. */
  const addRule = (/** @type {'overrides' | 'groups'} */ list) => {
    if (!editing) return;
    const variant = editing.variants[0] ?? '';
    if (list === 'overrides') editing.rules.overrides.push({ key: '', variant });
    else editing.rules.groups.push({ group: '', variant });
    render();
    /** @type {HTMLInputElement | null} */ (document.querySelector(`#editor-${list} .rule:last-child input`))?.focus();
  };
  $('add-override').addEventListener('click', () => addRule('overrides'));
  $('add-group').addEventListener('click', () => addRule('groups'));
  field('rollout').addEventListener('change', () => {
    if (!editing) return;
    const [first, ...rest] = editing.variants;
    editing.rules.rollout = field('rollout').checked
      ? [{ variant: first ?? '', weight: 100 }, ...rest.map((variant) => ({ variant, weight: 0 }))]
      : null;
    render();
  });
  form.addEventListener('change', preview);
  // Focus goes back to the flag's Target button, found again: a save's new state may have redrawn
  // the row while the dialog was open, and the button the dialog would return to is gone.
  dialog.addEventListener('close', () => {
    const key = editing?.key;
    if (key) /** @type {HTMLElement | null} */ (document.querySelector(`#flags-body [data-edit="${key}"]`))?.focus();
  });
  $('editor-cancel').addEventListener('click', () => dialog.close());
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!editing) return;
    const problem = checkRules(editing.rules, editing.variants);
    if (problem) return message('editor-message', problem, true);
    // Nobody awaits an event handler: whatever fails here is said in the dialog, or nowhere.
    let result;
    try {
      result = await api.patch(editing.key, patch());
    } catch (error) {
      return message('editor-message', notSentText(error), true);
    }
    if (!result.ok) return message('editor-message', result.text, true);
    dialog.close();
    message('flags-message', `${editing.key}: ${result.text}`);
  });

  return {
    /**
     * The "Target…" button of a flag's row, named for its flag.
     * @param {string} key @param {boolean} disabled
     */
    button(key, disabled) {
      const button = el('button', { type: 'button', class: 'quiet', 'data-edit': key, 'aria-label': `Target ${key}` }, [
        'Target…',
      ]);
      button.addEventListener('click', () => open(key));
      if (disabled) button.setAttribute('disabled', '');
      return button;
    },
  };
}
