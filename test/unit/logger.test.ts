import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, logDestination } from '../../server/observability/logger.js';

/** A terminal as the process sees it: a stream that says it is a TTY. */
function terminal(isTTY: boolean) {
  const lines: string[] = [];
  const stream = Object.assign(
    new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    }),
    { isTTY, hasColors: () => false },
  ) as unknown as NodeJS.WriteStream;
  return { stream, lines };
}

describe('the logs', () => {
  it('in a terminal, read as lines a person reads, the secrets still redacted', () => {
    const { stream, lines } = terminal(true);
    const logger = createLogger('info', logDestination(stream));
    logger.info({ token: 'ks_secret', flags: 4 }, 'flags loaded from file');
    const text = lines.join('');
    expect(text).toMatch(/^\[\d\d:\d\d:\d\d\] INFO: flags loaded from file \{"token":"\[redacted\]","flags":4\}\n$/);
    expect(text).not.toContain('ks_secret');
  });

  it('elsewhere (a pipe, a log shipper), stay JSON lines', () => {
    const { stream } = terminal(false);
    expect(logDestination(stream)).toBeUndefined();
  });
});
