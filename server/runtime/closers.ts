/**
 * What a start made that must be closed at the stop, closed last-in first-out: what was made last
 * depends on what was made before it, so it goes first. A closer that fails does not keep the
 * others from running.
 */
export class Closers {
  private readonly stack: { name: string; close: () => unknown }[] = [];

  add(name: string, close: () => unknown): void {
    this.stack.push({ name, close });
  }

  /** Runs every closer, newest first, once; returns the names of those that failed. */
  async closeAll(): Promise<string[]> {
    const failed: string[] = [];
    for (let closer = this.stack.pop(); closer; closer = this.stack.pop()) {
      try {
        await closer.close();
      } catch {
        failed.push(closer.name);
      }
    }
    return failed;
  }
}
