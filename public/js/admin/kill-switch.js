// @ts-check
import { isKilled, KILL_PATCH, KILL_SWITCH, restorePatch } from '../../../protocol/flags.js';
import { switchState } from '../switch-state.js';
import { notSentText } from './api.js';
import { $, ago, message } from './dom.js';

/** @typedef {import('../../../protocol/wire.js').AdminState} AdminState */
/** @typedef {import('../../../protocol/wire.js').AdminActor} AdminActor */
/** @typedef {import('./api.js').FlagApi} FlagApi */

/** @type {Record<string, string>} */
const VIA = {
  admin: 'from the admin page',
  cli: 'from the command line',
  api: 'through the API',
  file: 'in the flag file',
  auto: 'automatically',
  system: 'by the system',
};

/**
 * What a restore will do, for whom: the switch after the restore patch, in words. A kill that kept
 * targeting (beta live, say) comes back as that targeting says, and the dialog says so.
 * @param {import('../../../protocol/wire.js').FlagDefinition | null | undefined} definition
 */
export function restoreText(definition) {
  const spread = '(spread out over a few seconds, so the third party is not stampeded)';
  if (!definition) return `Every open browser brings back live avatars and recommendations ${spread}.`;
  const after = switchState({ ...definition, ...restorePatch(definition) });
  if (after.state === 'live') return `Every open browser brings back live avatars and recommendations ${spread}.`;
  return `The switch keeps its targeting: ${after.detail.replace(/\.$/, '')}. Browsers that become live bring back avatars and recommendations ${spread}; edit the targeting (Target…) to change who.`;
}

/** The token's name, and the note its holder added ("admin (Maya, on call)"). */
export function who(/** @type {AdminActor} */ actor) {
  return actor.note ? `${actor.name} (${actor.note})` : actor.name;
}

/**
 * The kill switch's card: what is true for viewers (killed, live, or partly killed and for whom),
 * the last change and who made it, and one button that does what one press can: restore a plain
 * kill, or kill for everyone, after a confirmation that says what will happen.
 * @param {{ state: () => AdminState, api: FlagApi, readOnly: boolean }} deps
 */
export function createKillSwitchCard({ state, api, readOnly }) {
  const killSwitch = () => state().flags.find((flag) => flag.key === KILL_SWITCH);
  const button = /** @type {HTMLButtonElement} */ ($('switch-button'));
  const dialog = /** @type {HTMLDialogElement} */ ($('confirm-dialog'));

  function render() {
    const { source, audit } = state();
    const flag = killSwitch();
    const definition = flag?.definition;
    const title = $('switch-title');
    if (flag?.problem) {
      // Not servable as written: the safe default (killed) serves until the file is fixed.
      title.dataset.state = 'killed';
      title.textContent = 'Killed: the flag cannot be served';
      $('switch-detail').textContent =
        `${KILL_SWITCH} ${flag.problem}. Every viewer gets the safe default (killed) until the flag file is fixed (version ${flag.version}).`;
      button.disabled = true;
      button.textContent = 'Fix the flag file first';
      button.className = 'switch-button';
    } else if (flag && !definition) {
      // A read-only source: the switch lives in LaunchDarkly.
      title.dataset.state = 'external';
      title.textContent = `Managed in ${source.kind === 'launchdarkly' ? 'LaunchDarkly' : source.kind}`;
      $('switch-detail').textContent =
        `Flip ${KILL_SWITCH} in your LaunchDarkly project; every open browser follows within milliseconds (version ${flag.version} here).`;
      button.disabled = true;
      button.textContent = 'Read-only here';
      button.className = 'switch-button';
    } else {
      const said = definition
        ? switchState(definition)
        : {
            state: 'killed',
            headline: 'Killed: third party off',
            detail: 'The flag is missing: the app treats it as killed.',
          };
      const restorable = isKilled(definition);
      title.dataset.state = said.state;
      title.textContent = said.headline;
      $('switch-detail').textContent = definition ? `${said.detail} (version ${flag?.version})` : said.detail;
      button.disabled = !flag || !source.writable || readOnly;
      button.textContent = restorable
        ? 'Restore third-party content'
        : said.state === 'live'
          ? 'Kill third-party content'
          : 'Kill for everyone';
      button.className = `switch-button ${restorable ? 'restore' : 'kill'}`;
    }
    const last = audit.find((entry) => entry.key === KILL_SWITCH);
    $('switch-last').textContent = last
      ? last.actor.source === 'system'
        ? `Last change: ${last.summary} (${last.actor.name}), ${ago(last.at)}`
        : `Last change: ${last.summary}, by ${who(last.actor)} ${VIA[last.actor.source] ?? `via ${last.actor.source}`}, ${ago(last.at)}`
      : source.writable
        ? 'No change recorded yet.'
        : '';
  }

  button.addEventListener('click', () => {
    const killing = !isKilled(killSwitch()?.definition);
    $('confirm-title').textContent = killing ? 'Kill third-party content?' : 'Restore third-party content?';
    $('confirm-text').textContent = killing
      ? 'Every open browser switches to fallback avatars and generic recommendations at once, and the app stops calling the third party.'
      : restoreText(killSwitch()?.definition);
    const confirmButton = $('confirm-button');
    confirmButton.textContent = killing ? 'Kill now' : 'Restore now';
    confirmButton.className = killing ? 'danger' : 'primary';
    dialog.returnValue = '';
    dialog.showModal();
  });
  dialog.addEventListener('close', async () => {
    if (dialog.returnValue !== 'confirm') return;
    // Nobody awaits an event handler: whatever fails here is said beside the button, or nowhere.
    try {
      const definition = killSwitch()?.definition;
      // The server's own patches (protocol/flags.js): restoring a flag killed by serving `false` serves `true` again.
      const patch = !isKilled(definition) ? KILL_PATCH : definition ? restorePatch(definition) : { state: 'ENABLED' };
      const result = await api.patch(KILL_SWITCH, { ...patch });
      message('switch-message', result.text, !result.ok);
    } catch (error) {
      message('switch-message', notSentText(error), true);
    }
  });

  return {
    render,
    /** The page's credential ended: say why, and keep the button from promising anything. */
    deny(/** @type {string} */ why) {
      message('switch-message', `${why} Reload the page to sign in again.`, true);
      button.disabled = true;
    },
  };
}
