/**
 * A bounded queue between a live capture and its sink (store writer, Kafka producer, HEP sender).
 * Live capture cannot be paused as a file read can: events queue here and go to the sink in batches,
 * one batch at a time (the sink batches further); when the sink falls so far behind that `maxItems`
 * wait, new items are dropped, counted and logged (at most every 10 s), so memory stays bounded.
 */
import type { Logger } from './log.js';

export interface LiveQueueOptions {
  /** Items that may wait (default 100 000). */
  maxItems?: number;
  logger?: Logger;
  /** Names the queue in log lines (e.g. 'store', 'kafka'). */
  sink: string;
}

export class LiveQueue<T> {
  private items: T[] = [];
  private inflight: Promise<void> | null = null;
  private scheduled = false;
  private readonly maxItems: number;
  private lastDropLog = 0;
  private waiters: Array<() => void> = [];
  /** Items dropped because the queue was full or the sink failed them. */
  dropped = 0;
  /** Items handed to the sink. */
  delivered = 0;
  /** Most items waiting at once. */
  peak = 0;

  constructor(
    private readonly consume: (items: T[]) => Promise<void>,
    private readonly options: LiveQueueOptions,
  ) {
    this.maxItems = options.maxItems ?? 100_000;
    if (!Number.isInteger(this.maxItems) || this.maxItems < 1)
      throw new RangeError(`maxItems must be a positive integer, got ${this.maxItems}`);
  }

  get length(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.items.length >= this.maxItems) {
      this.dropped++;
      const now = performance.now();
      if (now - this.lastDropLog > 10_000) {
        this.lastDropLog = now;
        this.options.logger?.error(
          `${this.options.sink} cannot keep up with the live capture: events dropped`,
          {
            sink: this.options.sink,
            queued: this.items.length,
            dropped: this.dropped,
          },
        );
      }
      return;
    }
    this.items.push(item);
    if (this.items.length > this.peak) this.peak = this.items.length;
    // Hand over after the current read, not inside the packet callback.
    if (!this.scheduled && this.inflight === null) {
      this.scheduled = true;
      setImmediate(this.pump);
    }
  }

  private readonly pump = (): void => {
    this.scheduled = false;
    if (this.inflight !== null) return;
    if (this.items.length === 0) {
      for (const wake of this.waiters.splice(0)) wake();
      return;
    }
    const batch = this.items;
    this.items = [];
    this.inflight = this.consume(batch).then(
      () => {
        this.delivered += batch.length;
      },
      (error: unknown) => {
        this.dropped += batch.length;
        this.options.logger?.error(`${this.options.sink} failed a batch of live events`, {
          sink: this.options.sink,
          events: batch.length,
          error: error instanceof Error ? error.message : String(error),
        });
      },
    );
    this.inflight.finally(() => {
      this.inflight = null;
      this.pump();
    });
  };

  /** Resolves once every item queued so far has been handed to the sink (and its promise settled). */
  drain(): Promise<void> {
    if (this.items.length === 0 && this.inflight === null) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      if (this.inflight === null && !this.scheduled) this.pump();
    });
  }
}
