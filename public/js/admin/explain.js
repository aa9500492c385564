// @ts-check
import { $, el, message } from './dom.js';

/** @typedef {{ key: string, value: unknown, variant?: string, reason: string, errorCode?: string, because: string }} Explanation */

/**
 * Who the viewer is, as the flags see them: their name and groups, or that the key is not one of
 * the demo's people (a viewer with no groups, bucketed by the key alone).
 * @param {{ targetingKey: string, name: string, groups: string[], country?: string, anonymous?: boolean }} context
 */
function whoText(context) {
  const groups = context.groups.length ? `groups ${context.groups.join(', ')}` : 'no groups';
  if (context.country === undefined)
    return `“${context.targetingKey}” is not one of the demo's people: a viewer with no groups, whose rollouts follow the key alone. What they get, flag by flag.`;
  return `What ${context.name} (${groups}; country ${context.country}) gets, flag by flag.`;
}

/**
 * Explain: what one viewer gets from every flag, and why (the rule or rollout bucket that
 * decided), from GET /api/explain.
 */
export function startExplain() {
  const form = /** @type {HTMLFormElement} */ ($('explain-form'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const field = new FormData(form).get('user');
    const user = typeof field === 'string' ? field.trim() : '';
    const response = await fetch(`/api/explain?user=${encodeURIComponent(user)}`, { credentials: 'same-origin' });
    const body =
      /** @type {{ message?: string, context: { targetingKey: string, name: string, groups: string[], country?: string, anonymous?: boolean }, flags: Explanation[] }} */ (
        await response.json().catch(() => ({}))
      );
    if (!response.ok) {
      $('explain-table').hidden = true;
      return message('explain-message', body.message || `Failed with HTTP ${response.status}.`, true);
    }
    message('explain-message', whoText(body.context));
    $('explain-table').hidden = false;
    $('explain-body').replaceChildren(
      ...body.flags.map((f) =>
        el('tr', { 'data-flag': f.key }, [
          el('td', { 'data-label': 'Flag' }, [el('code', {}, [f.key])]),
          el('td', { 'data-label': 'Value' }, [JSON.stringify(f.value)]),
          el('td', { 'data-label': 'Variant' }, [f.variant ?? '—']),
          el('td', { 'data-label': 'Reason' }, [
            el('span', { class: 'reason' }, [f.reason]),
            f.errorCode ? ` ${f.errorCode}` : '',
            el('span', { class: 'because muted small' }, [` ${f.because}`]),
          ]),
        ]),
      ),
    );
  });
}
