/**
 * The kill switch's own patches: what "kill" and "restore" write, and what "killed" means. One
 * source for the server, the CLI and the admin page (public/js/common.js).
 */
export { isKilled, KILL_PATCH, restorePatch } from '../../public/js/common.js';
