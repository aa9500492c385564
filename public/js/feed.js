// @ts-check
import { showConnection } from './connection.js';

/**
 * The feed page's live side. A kill applies at once, in place: every avatar becomes the
 * fallback (so the browser stops loading third-party images), the banner shows, and the live
 * region is re-rendered by the server (which, killed, calls no third party). A restore waits a
 * small random delay first, so that thousands of open browsers do not hit the third party in
 * the same instant. No reload, no navigation; the scroll position is kept.
 */
const KILL_SWITCH = 'show-avatars-and-reccs';
const RECS_FLAVOUR = 'recommendations-flavour';
const THEME = 'theme';
const THEMES = ['light', 'dark', 'aurora'];
const FALLBACK_AVATAR = '/static/img/fallback-avatar.svg';

const live = /** @type {HTMLElement} */ (document.getElementById('live'));
const jitterMs = Number(live.dataset.restoreJitterMs ?? 2000);
const toast = document.getElementById('toast');

/** The kill switch as the server last told us (starts as the page was rendered). */
let desired = document.getElementById('feed')?.dataset.showAvatars === 'true';
/** Bumped on every change; a fragment that arrives for an older change is dropped. */
let generation = 0;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let pending;

/** @param {string} text */
function say(text) {
  if (!toast) return;
  toast.textContent = text;
  toast.hidden = false;
  clearTimeout(Number(toast.dataset.timer));
  toast.dataset.timer = String(setTimeout(() => (toast.hidden = true), 4000));
}

function killInPlace() {
  const feed = document.getElementById('feed');
  if (feed) feed.dataset.showAvatars = 'false';
  for (const img of document.querySelectorAll('img.avatar')) {
    /** @type {HTMLImageElement} */ (img).src = FALLBACK_AVATAR;
  }
  const banner = document.getElementById('paused-banner');
  if (banner) banner.hidden = false;
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
 * Scrolls so that the post the reader was looking at stays where it was, even when the swap
 * added or removed something above it (the banner). A raw scrollY would jump.
 * @param {{ id: string, top: number } | undefined} anchor
 */
function keepInView(anchor) {
  const post = anchor && document.getElementById(anchor.id);
  if (post) window.scrollBy(0, post.getBoundingClientRect().top - anchor.top);
}

/**
 * Fetches the live region from the server and swaps it in, unless a newer change came first.
 * @param {number} forGeneration
 * @param {number} attempt
 */
async function refreshLiveRegion(forGeneration, attempt = 0) {
  try {
    const response = await fetch('/fragments/feed', { headers: { accept: 'text/html' }, credentials: 'same-origin' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const html = await response.text();
    if (forGeneration !== generation) return;
    // Server-rendered by our own EJS partial, every value escaped there: safe to parse as HTML.
    const template = document.createElement('template');
    template.innerHTML = html;
    const anchor = firstVisiblePost();
    live.replaceChildren(template.content);
    keepInView(anchor);
  } catch (error) {
    if (forGeneration !== generation || attempt >= 4) return;
    pending = setTimeout(() => refreshLiveRegion(forGeneration, attempt + 1), 500 * 2 ** attempt);
  }
}

/** Refetches the live region after a random delay: it will call the third party. */
function refreshSoon() {
  generation += 1;
  clearTimeout(pending);
  const mine = generation;
  pending = setTimeout(() => refreshLiveRegion(mine), Math.random() * jitterMs);
}

/** @param {boolean} value */
function applyKillSwitch(value) {
  if (value === desired) return;
  desired = value;
  if (!value) {
    generation += 1;
    clearTimeout(pending);
    killInPlace();
    say('Third-party content paused by the kill switch.');
    void refreshLiveRegion(generation);
  } else {
    say('Third-party content is back; refreshing…');
    refreshSoon();
  }
}

/** @param {string} value */
function applyFlavour(value) {
  const panel = document.getElementById('recommendations');
  if (!desired || !panel || panel.dataset.flavour === value) return;
  say(`Recommendations: switching to “${value}”…`);
  refreshSoon();
}

/** @param {string} value */
function applyTheme(value) {
  const theme = THEMES.includes(value) ? value : 'light';
  if (document.documentElement.dataset.theme === theme) return;
  document.documentElement.dataset.theme = theme;
}

/**
 * @param {string} key
 * @param {unknown} value
 */
function applyFlag(key, value) {
  if (key === KILL_SWITCH) applyKillSwitch(value === true);
  else if (key === RECS_FLAVOUR) applyFlavour(String(value));
  else if (key === THEME) applyTheme(String(value));
}

// @ts-ignore: the Socket.IO client comes from /socket.io/socket.io.min.js, served by our server.
const socket = window.io({ transports: ['websocket', 'polling'] });
showConnection(socket);
// Sent on every (re)connect: a browser that was away during a flip converges here.
socket.on('flag_snapshot', (/** @type {Record<string, unknown>} */ values) => {
  for (const [key, value] of Object.entries(values)) applyFlag(key, value);
});
socket.on('flag_update', (/** @type {{key: string, value: unknown, version: number}} */ update) => {
  applyFlag(update.key, update.value);
});

document.getElementById('viewer-select')?.addEventListener('change', (event) => {
  /** @type {HTMLSelectElement} */ (event.target).form?.submit();
});
