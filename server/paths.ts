import { fileURLToPath } from 'node:url';

/**
 * The project's root folder. This file sits one level below it both as source (server/) and
 * compiled (dist/), so the same relative step works for `tsx` and for `node dist`.
 */
export const projectRoot = fileURLToPath(new URL('..', import.meta.url));
export const viewsDir = fileURLToPath(new URL('../views', import.meta.url));
export const publicDir = fileURLToPath(new URL('../public', import.meta.url));
