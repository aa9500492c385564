/**
 * Coalesces concurrent calls for one key into one: while a call for `key` is in flight, every
 * other caller for `key` gets the same promise. A burst of page views for one person makes one
 * third-party call, not one per page.
 */
export class SingleFlight<T> {
  private readonly inFlight = new Map<string, Promise<T>>();

  run(key: string, call: () => Promise<T>): Promise<T> {
    const existing = this.inFlight.get(key);
    if (existing) return existing;
    const promise = call().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, promise);
    return promise;
  }

  /** Whether a call for `key` is in flight now (a caller would share it, not make another). */
  has(key: string): boolean {
    return this.inFlight.has(key);
  }

  get size(): number {
    return this.inFlight.size;
  }
}
