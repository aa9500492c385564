/** A call given a slot: give it back once the call's connection is done with it. */
export type Release = () => void;

interface Waiter {
  grant: (release: Release) => void;
}

/**
 * Calls in flight to one service, at most `limit()` at once, the rest waiting in line (first come,
 * first served) up to `maxQueued`. The limit may change at any moment (the slice of the cluster's
 * budget this instance holds): when it grows, waiting calls start; when it shrinks below what is in
 * flight, no call starts until enough have ended. A bulkhead whose size is not fixed.
 */
export class Slots {
  private running = 0;
  private readonly line: Waiter[] = [];

  constructor(
    private readonly limit: () => number,
    private readonly maxQueued: number,
    /** Told whenever what this service wants changes (calls in flight plus waiting). */
    private readonly onDemand: (wanted: number) => void = () => undefined,
  ) {}

  /** Calls in flight. */
  get inFlight(): number {
    return this.running;
  }

  /** Calls waiting for a slot. */
  get waiting(): number {
    return this.line.length;
  }

  /**
   * A slot at once, or in line for one for at most `waitMs`: resolves with its release, or with
   * undefined when the line is full or the wait ran out (the caller then skips the call).
   */
  acquire(waitMs: number): Promise<Release | undefined> {
    if (this.running < this.limit() && this.line.length === 0) return Promise.resolve(this.start());
    if (this.line.length >= this.maxQueued) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        grant: (release) => {
          clearTimeout(timer);
          resolve(release);
        },
      };
      const timer = setTimeout(() => {
        this.line.splice(this.line.indexOf(waiter), 1);
        this.tellDemand();
        resolve(undefined);
      }, waitMs);
      this.line.push(waiter);
      this.tellDemand();
    });
  }

  /** The limit grew (or a slot was given back): start whom it lets in. */
  wake(): void {
    while (this.line.length > 0 && this.running < this.limit()) this.line.shift()!.grant(this.start());
  }

  private start(): Release {
    this.running++;
    this.tellDemand();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.wake();
      this.tellDemand();
    };
  }

  /** Tells the budget how many calls want a slot: those running and those in line. */
  private tellDemand(): void {
    this.onDemand(this.running + this.line.length);
  }
}
