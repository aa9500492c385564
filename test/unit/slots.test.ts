import { describe, expect, it } from 'vitest';
import { Slots, type Release } from '../../server/upstream/slots.js';

describe('the slots of calls in flight', () => {
  it('lets in up to the limit at once, the rest in line first come first served, each as one ends', async () => {
    const slots = new Slots(() => 2, 10);
    const a = await slots.acquire(1000);
    const b = await slots.acquire(1000);
    const order: string[] = [];
    const c = slots.acquire(1000).then((release) => (order.push('c'), release));
    const d = slots.acquire(1000).then((release) => (order.push('d'), release));
    expect([slots.inFlight, slots.waiting]).toEqual([2, 2]);
    a!();
    a!(); // a release given twice frees one slot, once
    await c;
    expect([slots.inFlight, slots.waiting, order]).toEqual([2, 1, ['c']]);
    b!();
    await d;
    expect(order).toEqual(['c', 'd']);
  });

  it('refuses at once past the line, and gives up after the wait (leaving the line)', async () => {
    const slots = new Slots(() => 1, 1);
    await slots.acquire(1000);
    const waiting = slots.acquire(30);
    expect(await slots.acquire(1000)).toBeUndefined(); // the line is full
    expect(await waiting).toBeUndefined(); // 30 ms passed
    expect(slots.waiting).toBe(0);
  });

  it('follows a limit that moves: a larger one lets the line in at wake, a smaller one starts nobody until calls end', async () => {
    let limit = 1;
    const slots = new Slots(() => limit, 10);
    const first = (await slots.acquire(1000))!;
    const waiting = [slots.acquire(1000), slots.acquire(1000)];
    limit = 3;
    slots.wake();
    const [second, third] = (await Promise.all(waiting)) as Release[];
    expect(slots.inFlight).toBe(3);
    limit = 1;
    const late = slots.acquire(1000);
    first();
    second!();
    expect(slots.inFlight).toBe(1); // two ended, and the one in line still waits: 1 is the limit now
    third!();
    expect(await late).toBeDefined();
  });

  it('tells what it wants (in flight and in line) as that changes', async () => {
    const wanted: number[] = [];
    const slots = new Slots(
      () => 1,
      10,
      (count) => wanted.push(count),
    );
    const release = (await slots.acquire(1000))!;
    const next = slots.acquire(1000);
    release();
    (await next)!();
    expect(wanted).toEqual([1, 2, 1, 1, 0]);
  });

  it('a call that comes while others wait takes its place in line behind them, even when the limit has grown unwoken', async () => {
    let limit = 1;
    const slots = new Slots(() => limit, 10);
    const first = (await slots.acquire(1000))!;
    const order: string[] = [];
    const waiting = slots.acquire(1000).then((release) => (order.push('waiting'), release));
    limit = 2; // not yet woken
    const late = slots.acquire(1000).then((release) => (order.push('late'), release));
    expect([slots.inFlight, slots.waiting]).toEqual([1, 2]);
    slots.wake();
    (await waiting)!();
    (await late)!();
    first();
    expect(order).toEqual(['waiting', 'late']);
  });

  it('tells what it wants counting the calls in line, as they start and as one gives up', async () => {
    const wanted: number[] = [];
    const slots = new Slots(
      () => 1,
      10,
      (count) => wanted.push(count),
    );
    const first = (await slots.acquire(1000))!;
    const next = slots.acquire(1000);
    const impatient = slots.acquire(20);
    const last = slots.acquire(1000);
    expect(wanted).toEqual([1, 2, 3, 4]);
    expect(await impatient).toBeUndefined();
    expect(wanted).toEqual([1, 2, 3, 4, 3]); // one in flight, two in line
    first();
    expect(wanted).toEqual([1, 2, 3, 4, 3, 2, 2]); // the next starts (one in flight, one in line), the first ends
    (await next)!();
    (await last)!();
  });
});
