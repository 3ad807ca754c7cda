/**
 * Runs render jobs one at a time, in the order pushed (the idea of the queue
 * in cli/run.ts, shared here for `highwater watch`). A job never rejects into
 * the queue: an error goes to `onError` and the next job runs.
 */
export class RenderQueue {
  private tail: Promise<void> = Promise.resolve();
  private pending = 0;

  constructor(private readonly onError: (what: string, error: unknown) => void = () => {}) {}

  /** Jobs queued or running. */
  get size(): number {
    return this.pending;
  }

  push(what: string, job: () => Promise<void>): void {
    this.pending++;
    this.tail = this.tail.then(async () => {
      try {
        await job();
      } catch (e) {
        try {
          this.onError(what, e);
        } catch {
          // a failing error callback must not stop the queue
        }
      } finally {
        this.pending--;
      }
    });
  }

  /** Resolves once every job pushed so far (and any they push) is done. */
  async idle(): Promise<void> {
    while (this.pending > 0) await this.tail;
  }
}
