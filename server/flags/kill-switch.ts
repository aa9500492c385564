import { KILL_SWITCH } from './catalog.js';
import { isContextFree, valueOrSafeDefault, type FlagEvaluator } from './provider.js';

/**
 * The kill switch's own patches: what "kill" and "restore" write, and what "killed" means. One
 * source for the server, the CLI and the admin page (protocol/flags.js).
 */
export { isKilled, KILL_PATCH, restorePatch } from '../../protocol/flags.js';

/**
 * Whether the kill switch is off for every viewer, as served now: one evaluation with no context,
 * whose reason says that any context gets the same value. Partly killed (targeting) is not this.
 */
export async function killedForEveryone(flags: FlagEvaluator): Promise<boolean> {
  const details = await flags.resolve('boolean', KILL_SWITCH, false, {});
  return isContextFree(details) && valueOrSafeDefault(details, false) === false;
}
