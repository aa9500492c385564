// @ts-check
import { showConnection } from './connection.js';
import { createLiveSync, fetchFragment } from './live-sync.js';
import { THEMES } from '../../protocol/flags.js';
import { FALLBACK_AVATAR } from '../../protocol/wire.js';

/**
 * The feed page's live side: the DOM for the policy in live-sync.js (shared with the
 * benchmarks). A kill applies at once, in place, with no request: every avatar becomes the
 * fallback (so the browser stops loading third-party images), the generic recommendations the
 * page holds in a <template> replace the live ones, and the banner shows. A restore fetches the
 * live region at the moment the server's pacing gives, showing meanwhile that the page is
 * catching up. No reload, no navigation; the reader stays on the same post.
 */

const live = /** @type {HTMLElement} */ (document.getElementById('live'));
const announcer = document.getElementById('announcer');

/**
 * Says what a flip did to screen readers; everyone else sees it in the banner. Cleared after a
 * while, so that the same words are said again next time.
 * @param {string} text
 */
function say(text) {
  if (!announcer) return;
  announcer.textContent = text;
  clearTimeout(Number(announcer.dataset.timer));
  announcer.dataset.timer = String(setTimeout(() => (announcer.textContent = ''), 4000));
}

/** @param {string} id */
const byId = (id) => document.getElementById(id);

function kill() {
  const feed = byId('feed');
  if (feed) feed.dataset.showAvatars = 'false';
  for (const img of document.querySelectorAll('img.avatar')) {
    /** @type {HTMLImageElement} */ (img).src = FALLBACK_AVATAR;
  }
  const killed = /** @type {HTMLTemplateElement | null} */ (byId('killed-recommendations'));
  const panel = byId('recommendations');
  if (killed && panel) panel.replaceWith(killed.content.cloneNode(true));
  const paused = byId('paused-banner');
  if (paused) paused.hidden = false;
  catchingUp(undefined);
}

/** @param {number | undefined} waitMs */
function catchingUp(waitMs) {
  const banner = byId('catching-up-banner');
  if (waitMs === undefined) {
    delete live.dataset.catchingUp;
    if (banner) banner.hidden = true;
    return;
  }
  live.dataset.catchingUp = 'true';
  const feed = byId('feed');
  if (feed) feed.dataset.showAvatars = 'true';
  const paused = byId('paused-banner');
  if (paused) paused.hidden = true;
  const note = document.querySelector('#recommendations .note');
  if (note) note.textContent = 'Your personalized picks are on their way.';
  if (banner) {
    banner.hidden = false;
    const eta = banner.querySelector('.catch-up-eta');
    const seconds = Math.ceil(waitMs / 1000);
    if (eta)
      eta.textContent =
        seconds <= 1
          ? 'Your avatars and picks arrive in a moment.'
          : `Your avatars and picks arrive in about ${seconds} s.`;
  }
}

/** The first post at least partly in view, and where it is: what the reader is looking at. */
function firstVisiblePost() {
  for (const post of document.querySelectorAll('.post')) {
    const { top, bottom } = post.getBoundingClientRect();
    if (bottom > 0) return { id: post.id, top };
  }
  return undefined;
}

/**
 * Swaps in a live region fetched from the server, and scrolls so that the post the reader was
 * looking at stays where it was, even when something above it (a banner) came or went.
 * @param {string} html
 */
function swap(html) {
  // Server-rendered by our own EJS partial, every value escaped there: safe to parse as HTML.
  const template = document.createElement('template');
  template.innerHTML = html;
  const anchor = firstVisiblePost();
  live.replaceChildren(template.content);
  const post = anchor && document.getElementById(anchor.id);
  if (post) window.scrollBy(0, post.getBoundingClientRect().top - anchor.top);
}

/** @param {unknown} value */
function theme(value) {
  const name = typeof value === 'string' && THEMES.includes(value) ? value : THEMES[0];
  if (document.documentElement.dataset.theme !== name) document.documentElement.dataset.theme = name;
}

const sync = createLiveSync({
  live: byId('feed')?.dataset.showAvatars === 'true',
  flavour: live.dataset.flavour,
  effects: {
    kill,
    swap,
    catchingUp,
    theme,
    say,
    fetchFragment: (turn) => fetchFragment('/fragments/feed', turn, { credentials: 'same-origin' }),
  },
});

// Rendered live but short (the third party at capacity): come back on the turn the server gave.
const turn = byId('catching-up-banner')?.dataset;
if (turn?.turn) sync.comeBackOn({ token: turn.turn, waitMs: Number(turn.turnWaitMs ?? 1000) });

const socket = window.io({ transports: ['websocket', 'polling'] });
showConnection(socket);
// Sent on every (re)connect: a browser that was away during a flip converges here.
socket.on('flag_snapshot', (/** @type {import('../../protocol/wire.js').FlagSnapshot} */ values) =>
  sync.snapshot(values),
);
socket.on('flag_update', (/** @type {import('../../protocol/wire.js').FlagUpdate} */ update) => sync.update(update));

byId('viewer-select')?.addEventListener('change', (event) => {
  /** @type {HTMLSelectElement} */ (event.target).form?.submit();
});
