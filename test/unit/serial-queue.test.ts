import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { QueueDeadlineError, SerialQueue } from '../../server/concurrency/serial-queue.js';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

/** A task the test settles by hand, recording when it started. */
function pending<T>(log: string[], name: string) {
  let settle!: (value: T) => void;
  const task = () => {
    log.push(`start ${name}`);
    return new Promise<T>((resolve) => (settle = resolve));
  };
  return { task, settle: (value: T) => settle(value) };
}

describe('the serial queue', () => {
  it('runs tasks one at a time, in the order they were queued, a failure included', async () => {
    const log: string[] = [];
    const queue = new SerialQueue();
    const a = pending<string>(log, 'a');
    const first = queue.run(a.task);
    const second = queue.run(async () => {
      log.push('start b');
      throw new Error('b failed');
    });
    const third = queue.run(async () => void log.push('start c'));
    await vi.advanceTimersByTimeAsync(0);
    expect(log).toEqual(['start a']); // b waits for a
    a.settle('a done');
    expect(await first).toBe('a done');
    await expect(second).rejects.toThrow('b failed');
    await third;
    expect(log).toEqual(['start a', 'start b', 'start c']);
  });

  it('with a deadline, a task that never settles gives up its turn: its caller gets an error, the next task runs', async () => {
    const log: string[] = [];
    const queue = new SerialQueue({ deadlineMs: 1000 });
    const hung = pending<string>(log, 'hung');
    const first = queue.run(hung.task);
    const outcome = first.catch((error: unknown) => error);
    const next = queue.run(async () => (log.push('start next'), 'next done'));
    await vi.advanceTimersByTimeAsync(999);
    expect(log).toEqual(['start hung']);
    await vi.advanceTimersByTimeAsync(1);
    const error = (await outcome) as QueueDeadlineError;
    expect(error).toBeInstanceOf(QueueDeadlineError);
    expect(error).toMatchObject({ name: 'QueueDeadlineError', deadlineMs: 1000 });
    expect(error.message).toBe('a queued task ran past its 1000 ms deadline; the queue went on without it');
    expect(await next).toBe('next done');
    expect(log).toEqual(['start hung', 'start next']);
  });

  it('a task that settles in time keeps its result, and leaves no timer behind', async () => {
    const queue = new SerialQueue({ deadlineMs: 1000 });
    expect(await queue.run(async () => 42)).toBe(42);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a task that fails in time keeps its own error, and leaves no timer behind', async () => {
    const queue = new SerialQueue({ deadlineMs: 1000 });
    await expect(queue.run(async () => Promise.reject(new Error('its own')))).rejects.toThrow('its own');
    expect(vi.getTimerCount()).toBe(0);
    // The deadline never fires later for a task that is done.
    await vi.advanceTimersByTimeAsync(5000);
    expect(await queue.run(async () => 'next')).toBe('next');
  });

  it('without a deadline, a slow task keeps its turn for as long as it runs', async () => {
    const log: string[] = [];
    const queue = new SerialQueue();
    const slow = pending<string>(log, 'slow');
    const first = queue.run(slow.task);
    const next = queue.run(async () => (log.push('start next'), 'next done'));
    expect(vi.getTimerCount()).toBe(0); // no deadline timer at all
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(log).toEqual(['start slow']);
    slow.settle('slow done');
    expect(await first).toBe('slow done');
    expect(await next).toBe('next done');
  });
});
