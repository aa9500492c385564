// @ts-check
/**
 * The admin page's DOM helpers. Everything is rendered with textContent and attributes: no data
 * is ever parsed as HTML.
 */

/** The element of this id (the page's template has every one the scripts use). */
export const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {(Node | string)[]} [children]
 */
export function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/** Shows a message in the live region of this id, as an error or not. */
export function message(/** @type {string} */ id, /** @type {string} */ text, error = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle('error', error);
}

/** "12s ago", "3 min ago", "2 h ago", then the date. */
export function ago(/** @type {string} */ iso) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}
