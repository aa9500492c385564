import { fileURLToPath } from 'node:url';

/**
 * The project's root folder: one level above this file as source (server/), two as compiled
 * (dist/server/, the build keeping the tree's layout so that the server can import the module it
 * shares with the pages, public/js/common.js).
 */
const here = new URL('.', import.meta.url);
const root = new URL(here.pathname.endsWith('/dist/server/') ? '../../' : '../', here);
export const projectRoot = fileURLToPath(root);
export const viewsDir = fileURLToPath(new URL('views', root));
export const publicDir = fileURLToPath(new URL('public', root));
