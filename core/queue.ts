/**
 * A bounded queue between a live capture and its sinks (store writer, Kafka producer, HEP sender).
 * Live capture cannot be paused as a file read can: events queue here and go to the sinks in batches,
 * one batch at a time (the sink batches further).
 *
 * The bound (`maxItems`) covers every event the queue holds: those waiting and those of the batch
 * handed to the sinks whose delivery has not settled yet (the batch is still referenced, so it is
 * still memory). A batch is at most `maxBatch` items, so that a sink that takes a batch slowly frees
 * room as it goes rather than all at once. When the queue holds `maxItems`, new items are dropped,
 * counted by reason ('queue full': the sinks could not keep up) and logged (the first drop at once, then
 * at most every 10 s, each line with the drops since the previous one; the driver's statistics lines
 * and its final line carry the totals), so memory stays bounded and no drop is silent. Items of a
 * batch whose delivery rejected are counted 'sink failed'. Every item pushed is, in the end, either
 * `delivered` or `dropped`: `pushed === delivered + dropped + length` at any time.
 */
import type { Logger } from './log.js';

/** Why the queue dropped items. */
export type QueueDropReason = 'queue full' | 'sink failed';

export interface LiveQueueOptions {
  /** Items the queue may hold, waiting or handed over and not settled (default 100 000). */
  maxItems?: number;
  /** Most items handed to the sinks at once (default 4096, at most maxItems). */
  maxBatch?: number;
  logger?: Logger;
  /** Names the queue in log lines (e.g. 'store', 'kafka'). */
  sink: string;
}

const DROP_LOG_EVERY_MS = 10_000;

export class LiveQueue<T> {
  /** Waiting items are items[head..]; the consumed prefix is cut off now and then. */
  private items: T[] = [];
  private head = 0;
  /** Items of the batch handed over whose delivery has not settled. */
  private handed = 0;
  private inflight: Promise<void> | null = null;
  private scheduled = false;
  /** The bound. */
  readonly maxItems: number;
  private readonly maxBatch: number;
  private lastDropLog = Number.NEGATIVE_INFINITY;
  /** 'queue full' drops not in a log line yet. */
  private unlogged = 0;
  private waiters: Array<() => void> = [];
  /** Items pushed. */
  pushed = 0;
  /** Items dropped, all reasons together (see droppedByReason). */
  dropped = 0;
  /** Items dropped because the queue was full (the sinks could not keep up). */
  droppedFull = 0;
  /** Items of batches whose delivery rejected. */
  droppedFailed = 0;
  /** Items handed to the sinks whose delivery resolved. */
  delivered = 0;
  /** Most items held at once (the high-water mark; at most maxItems). */
  peak = 0;

  constructor(
    private readonly consume: (items: T[]) => Promise<void>,
    private readonly options: LiveQueueOptions,
  ) {
    this.maxItems = options.maxItems ?? 100_000;
    if (!Number.isInteger(this.maxItems) || this.maxItems < 1)
      throw new RangeError(`maxItems must be a positive integer, got ${this.maxItems}`);
    const batch = options.maxBatch ?? 4096;
    if (!Number.isInteger(batch) || batch < 1)
      throw new RangeError(`maxBatch must be a positive integer, got ${batch}`);
    this.maxBatch = Math.min(batch, this.maxItems);
  }

  /** Items held now: waiting, and handed to the sinks but not settled. */
  get length(): number {
    return this.items.length - this.head + this.handed;
  }

  /** Items waiting (not yet handed to the sinks). */
  get waiting(): number {
    return this.items.length - this.head;
  }

  /** Drops by reason (reasons with none left out). */
  droppedByReason(): Partial<Record<QueueDropReason, number>> {
    const out: Partial<Record<QueueDropReason, number>> = {};
    if (this.droppedFull > 0) out['queue full'] = this.droppedFull;
    if (this.droppedFailed > 0) out['sink failed'] = this.droppedFailed;
    return out;
  }

  push(item: T): void {
    this.pushed++;
    if (this.length >= this.maxItems) {
      this.dropped++;
      this.droppedFull++;
      this.unlogged++;
      const now = performance.now();
      if (now - this.lastDropLog >= DROP_LOG_EVERY_MS) {
        this.lastDropLog = now;
        this.options.logger?.error(
          `${this.options.sink} cannot keep up with the live capture: events dropped (queue full)`,
          {
            sink: this.options.sink,
            reason: 'queue full',
            maxQueuedEvents: this.maxItems,
            queued: this.length,
            droppedSinceLastLine: this.unlogged,
            dropped: this.droppedFull,
          },
        );
        this.unlogged = 0;
      }
      return;
    }
    this.items.push(item);
    const held = this.length;
    if (held > this.peak) this.peak = held;
    // Hand over after the current read, not inside the packet callback.
    if (!this.scheduled && this.inflight === null) {
      this.scheduled = true;
      setImmediate(this.pump);
    }
  }

  /** The next batch (at most maxBatch items), removed from the waiting ones. */
  private take(): T[] {
    const end = Math.min(this.items.length, this.head + this.maxBatch);
    let batch: T[];
    if (this.head === 0 && end === this.items.length) {
      batch = this.items;
      this.items = [];
    } else {
      batch = this.items.slice(this.head, end);
      this.head = end;
      // Cut the consumed prefix off once it is most of the array (amortised O(1) per item).
      if (this.head === this.items.length) {
        this.items = [];
        this.head = 0;
      } else if (this.head >= 4096 && this.head * 2 >= this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
    }
    return batch;
  }

  private readonly pump = (): void => {
    this.scheduled = false;
    if (this.inflight !== null) return;
    if (this.waiting === 0) {
      for (const wake of this.waiters.splice(0)) wake();
      return;
    }
    const batch = this.take();
    this.handed = batch.length;
    this.inflight = this.consume(batch).then(
      () => {
        this.delivered += batch.length;
      },
      (error: unknown) => {
        this.dropped += batch.length;
        this.droppedFailed += batch.length;
        this.options.logger?.error(`${this.options.sink} failed a batch of live events: events dropped`, {
          sink: this.options.sink,
          reason: 'sink failed',
          events: batch.length,
          error: error instanceof Error ? error.message : String(error),
        });
      },
    );
    this.inflight.finally(() => {
      this.inflight = null;
      this.handed = 0;
      this.pump();
    });
  };

  /** Resolves once every item queued so far has been handed to the sink (and its promise settled). */
  drain(): Promise<void> {
    if (this.waiting === 0 && this.inflight === null) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      if (this.inflight === null && !this.scheduled) this.pump();
    });
  }
}
