import { describe, expect, it } from 'vitest';
import { SingleFlight } from '../../server/upstream/single-flight.js';

/** A call the test settles by hand, counting how often it was started. */
function deferredCall<T>() {
  let starts = 0;
  let settle: { resolve: (value: T) => void; reject: (error: Error) => void } | undefined;
  const call = () => {
    starts++;
    return new Promise<T>((resolve, reject) => (settle = { resolve, reject }));
  };
  return {
    call,
    starts: () => starts,
    resolve: (value: T) => settle!.resolve(value),
    reject: (error: Error) => settle!.reject(error),
  };
}

describe('single-flight', () => {
  it('gives every caller for one key the same call while it is in flight', async () => {
    const flights = new SingleFlight<string>();
    const avatar = deferredCall<string>();
    const first = flights.run('ada', avatar.call);
    const second = flights.run('ada', avatar.call);
    expect(second).toBe(first);
    expect(avatar.starts()).toBe(1);
    expect(flights.size).toBe(1);
    avatar.resolve('a.png');
    expect(await Promise.all([first, second])).toEqual(['a.png', 'a.png']);
  });

  it('keeps keys apart', async () => {
    const flights = new SingleFlight<string>();
    const ada = deferredCall<string>();
    const grace = deferredCall<string>();
    const forAda = flights.run('ada', ada.call);
    const forGrace = flights.run('grace', grace.call);
    expect(forGrace).not.toBe(forAda);
    expect([ada.starts(), grace.starts()]).toEqual([1, 1]);
    expect(flights.size).toBe(2);
    ada.resolve('a.png');
    grace.resolve('g.png');
    expect(await Promise.all([forAda, forGrace])).toEqual(['a.png', 'g.png']);
  });

  it('forgets a key once its call is done, so the next caller makes a new call', async () => {
    const flights = new SingleFlight<string>();
    const avatar = deferredCall<string>();
    const first = flights.run('ada', avatar.call);
    avatar.resolve('a.png');
    await first;
    expect(flights.size).toBe(0);
    const second = flights.run('ada', avatar.call);
    expect(second).not.toBe(first);
    expect(avatar.starts()).toBe(2);
    avatar.resolve('b.png');
    expect(await second).toBe('b.png');
  });

  it('forgets a key whose call failed too: a failure is shared, never kept', async () => {
    const flights = new SingleFlight<string>();
    const avatar = deferredCall<string>();
    const first = flights.run('ada', avatar.call);
    const second = flights.run('ada', avatar.call);
    avatar.reject(new Error('503'));
    await expect(first).rejects.toThrow('503');
    await expect(second).rejects.toThrow('503');
    expect(flights.size).toBe(0);
    const retry = flights.run('ada', avatar.call);
    avatar.resolve('a.png');
    expect(await retry).toBe('a.png');
    expect(avatar.starts()).toBe(2);
  });
});
