// @ts-check
import { $, el, message } from './dom.js';

/** @typedef {{ key: string, value: unknown, variant?: string, reason: string, errorCode?: string, because: string }} Explanation */

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
      /** @type {{ message?: string, context: { name: string, groups: string[] }, flags: Explanation[] }} */ (
        await response.json().catch(() => ({}))
      );
    if (!response.ok) {
      $('explain-table').hidden = true;
      return message('explain-message', body.message || `Failed with HTTP ${response.status}.`, true);
    }
    message(
      'explain-message',
      `As ${body.context.name}${body.context.groups.length ? ` (${body.context.groups.join(', ')})` : ''}:`,
    );
    $('explain-table').hidden = false;
    $('explain-body').replaceChildren(
      ...body.flags.map((f) =>
        el('tr', { 'data-flag': f.key }, [
          el('td', {}, [el('code', {}, [f.key])]),
          el('td', {}, [JSON.stringify(f.value)]),
          el('td', {}, [f.variant ?? '—']),
          el('td', {}, [
            el('span', { class: 'reason' }, [f.reason]),
            f.errorCode ? ` ${f.errorCode}` : '',
            el('span', { class: 'because muted small' }, [` ${f.because}`]),
          ]),
        ]),
      ),
    );
  });
}
