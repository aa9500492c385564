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

/**
 * An avatar whose image fails to load (the image host down while its API answers) becomes the
 * fallback in place: a viewer never sees a broken image. Errors do not bubble: caught on the way
 * down, for every avatar the page has or will get. One that failed before this script ran is
 * swapped at once.
 * @param {Element} img
 */
function fallBack(img) {
  const avatar = /** @type {HTMLImageElement} */ (img);
  if (avatar.getAttribute('src') === FALLBACK_AVATAR) return;
  avatar.src = FALLBACK_AVATAR;
  avatar.dataset.fallback = 'image-failed';
}
document.addEventListener(
  'error',
  (event) => {
    if (event.target instanceof HTMLImageElement && event.target.classList.contains('avatar')) fallBack(event.target);
  },
  true,
);
/**
 * Follow buttons: a demo of the social side, kept in this browser (the third party owns the
 * graph; nothing is sent).
 */
const FOLLOWS = 'pulse-follows';
/**
 * The people this browser follows. Storage may be blocked or hold anything: then nobody, and the
 * page goes on (the live side below must never fail for this).
 * @returns {string[]}
 */
function follows() {
  try {
    const stored = JSON.parse(window.localStorage.getItem(FOLLOWS) || '[]');
    return Array.isArray(stored) ? stored.map(String) : [];
  } catch {
    return [];
  }
}
function showFollows() {
  const mine = new Set(follows());
  for (const button of document.querySelectorAll('button[data-follow]')) {
    const on = mine.has(/** @type {HTMLElement} */ (button).dataset.follow ?? '');
    // Only what changed: the observer below sees every write, and would see its own forever.
    if (button.getAttribute('aria-pressed') !== String(on)) button.setAttribute('aria-pressed', String(on));
    const label = on ? 'Following' : 'Follow';
    if (button.textContent !== label) button.textContent = label;
  }
}
document.addEventListener('click', (event) => {
  const button = event.target instanceof Element ? event.target.closest('button[data-follow]') : null;
  if (!button) return;
  const id = /** @type {HTMLElement} */ (button).dataset.follow ?? '';
  const mine = new Set(follows());
  if (mine.has(id)) mine.delete(id);
  else mine.add(id);
  try {
    window.localStorage.setItem(FOLLOWS, JSON.stringify([...mine]));
  } catch {
    // Storage blocked: the button says nothing it cannot keep.
    return;
  }
  showFollows();
});
new MutationObserver(showFollows).observe(live, { childList: true, subtree: true });
showFollows();

for (const img of document.querySelectorAll('img.avatar')) {
  const avatar = /** @type {HTMLImageElement} */ (img);
  if (avatar.complete && avatar.naturalWidth === 0) fallBack(avatar);
}

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

/** A wait shorter than this is not worth a banner: a normal restore fills in before it would show. */
const BANNER_AFTER_MS = 400;
/** @type {number | undefined} */
let catchingSince;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let bannerTimer;

/**
 * Live, waiting for its content (`waitMs` to the turn the page holds), or done (undefined). The
 * page marks it at once (`#live[data-catching-up]`); the banner shows only if the wait lasts past
 * BANNER_AFTER_MS, and its estimate is the turn's own: past a few seconds it says how long so far.
 * @param {number | undefined} waitMs
 */
function catchingUp(waitMs) {
  const banner = byId('catching-up-banner');
  if (waitMs === undefined) {
    delete live.dataset.catchingUp;
    catchingSince = undefined;
    clearTimeout(bannerTimer);
    bannerTimer = undefined;
    if (banner) banner.hidden = true;
    return;
  }
  catchingSince ??= Date.now();
  live.dataset.catchingUp = 'true';
  const feed = byId('feed');
  if (feed) feed.dataset.showAvatars = 'true';
  const paused = byId('paused-banner');
  if (paused) paused.hidden = true;
  const note = document.querySelector('#recommendations .note');
  if (note) note.textContent = 'Your personalized picks are on their way.';
  if (!banner) return;
  const eta = banner.querySelector('.catch-up-eta');
  const seconds = Math.ceil(waitMs / 1000);
  const waited = Math.round((Date.now() - catchingSince) / 1000);
  if (eta)
    eta.textContent =
      waited >= 5
        ? `The third party is busy: your avatars and picks are on their way (${waited} s so far${seconds > 1 ? `, next try in about ${seconds} s` : ''}).`
        : seconds <= 1
          ? 'Your avatars and picks arrive in a moment.'
          : `Your avatars and picks arrive in about ${seconds} s.`;
  if (!banner.hidden || bannerTimer !== undefined) return;
  bannerTimer = setTimeout(() => {
    bannerTimer = undefined;
    if (live.dataset.catchingUp === 'true') banner.hidden = false;
  }, BANNER_AFTER_MS);
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
