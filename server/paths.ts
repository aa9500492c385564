import { fileURLToPath } from 'node:url';

/**
 * The project's root folder: one level above this file as source (server/), two as compiled
 * (dist/server/, the build keeping the tree's layout so that the server imports what it shares
 * with the pages, protocol/, as dist/protocol/).
 */
const here = new URL('.', import.meta.url);
const root = new URL(here.pathname.endsWith('/dist/server/') ? '../../' : '../', here);
export const projectRoot = fileURLToPath(root);
export const viewsDir = fileURLToPath(new URL('views', root));
export const publicDir = fileURLToPath(new URL('public', root));
/** What the server and the pages share, served as is at /protocol/ (the pages import it relatively). */
export const protocolDir = fileURLToPath(new URL('protocol', root));
