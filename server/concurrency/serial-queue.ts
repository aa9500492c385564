/** A task of a SerialQueue ran past the queue's deadline: the queue went on without it. */
export class QueueDeadlineError extends Error {
  constructor(readonly deadlineMs: number) {
    super(`a queued task ran past its ${deadlineMs} ms deadline; the queue went on without it`);
    this.name = 'QueueDeadlineError';
  }
}

/**
 * Runs async tasks one at a time, in the order they were queued: a flag store's writes, a
 * pusher's snapshots and pushes (so that a browser never gets a push for a change older than its
 * snapshot). With `deadlineMs`, a task that has not settled by then gives up its turn: its caller
 * gets a QueueDeadlineError and the next task starts. Without one, a task that never settles (a
 * provider call that hangs) would hold every later task forever: every new browser's snapshot.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: { deadlineMs?: number } = {}) {}

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(() => this.withDeadline(task));
    this.tail = result.catch(() => undefined);
    return result;
  }

  private withDeadline<T>(task: () => Promise<T>): Promise<T> {
    const { deadlineMs } = this.options;
    if (deadlineMs === undefined) return task();
    return new Promise<T>((resolve, reject) => {
      // Unref'd: a task still running keeps the process alive by itself if it must; the deadline does not.
      const timer = setTimeout(() => reject(new QueueDeadlineError(deadlineMs)), deadlineMs).unref();
      task().then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          // The task's own rejection, passed on as it is.
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
          reject(error);
        },
      );
    });
  }
}
