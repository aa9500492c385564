import type { EventEmitter } from 'node:events';
import type { Logger } from './logger.js';

export type ProcessFault = 'unhandled_rejection' | 'uncaught_exception';

/**
 * The one decision for what a fault nobody caught does to the server. A promise rejected with no
 * handler is a bug, but it has not broken anything else: it is logged with its reason and stack,
 * counted (`process_faults_total`), and the server keeps serving. An exception thrown with no
 * handler may have left any state half-changed: logged, counted, then the graceful stop (browsers
 * told to reconnect, requests drained, the store flushed) and exit code 1.
 */
export function guardProcess(deps: {
  process: EventEmitter;
  logger: Logger;
  counted: (fault: ProcessFault) => void;
  stop: (exitCode: number) => void;
}): () => void {
  const onRejection = (reason: unknown) => {
    deps.counted('unhandled_rejection');
    deps.logger.error(
      { err: reason },
      'a promise was rejected and nobody handled it (a bug): logged, and the server keeps serving',
    );
  };
  const onException = (error: unknown) => {
    deps.counted('uncaught_exception');
    deps.logger.fatal({ err: error }, 'an exception nobody caught (a bug): stopping gracefully');
    deps.stop(1);
  };
  deps.process.on('unhandledRejection', onRejection);
  deps.process.on('uncaughtException', onException);
  return () => {
    deps.process.off('unhandledRejection', onRejection);
    deps.process.off('uncaughtException', onException);
  };
}
