/**
 * A process that writes the flag file as fast as it can, forever: the crash test kills it
 * (SIGKILL) at random moments and checks what is left on disk. Each write also grows the
 * definition, so that writes take long enough to be caught in the middle. It runs the compiled
 * store (`dist/`, built by test/setup/build.ts) under plain Node: a start takes ~100 ms, not
 * the second that compiling TypeScript on the fly takes.
 *   node test/helpers/write-forever.mjs <flags-file>
 */
import { FileBackend } from '../../dist/server/flags/backend-file.js';
import { defaultFlagDocument, KILL_SWITCH } from '../../dist/server/flags/catalog.js';
import { FlagRepository } from '../../dist/server/flags/repository.js';
import { createLogger } from '../../dist/server/observability/logger.js';

const file = process.argv[2];
const logger = createLogger('silent');
const store = new FlagRepository(new FileBackend({ file, logger }), logger, defaultFlagDocument);
await store.start();
process.send?.('writing');
for (let i = 0; ; i++) {
  await store.update(
    KILL_SWITCH,
    (current) => ({
      ...current,
      state: i % 2 ? 'DISABLED' : 'ENABLED',
      variants: {
        on: true,
        off: false,
        ...Object.fromEntries(Array.from({ length: 200 }, (_, n) => [`spare-${i % 7}-${n}`, false])),
      },
    }),
    { actor: { source: 'system', name: 'write-forever' } },
  );
}
