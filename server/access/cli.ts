/**
 * The entry point of `npm run token` (see token-command.ts). Nothing else here: what it runs is
 * tested in the tests' own process, and this file is only ever a child process.
 */
import { runTokenCli } from './token-command.js';

const [, , ...argv] = process.argv;
process.exit(await runTokenCli(argv, process.env, console));
