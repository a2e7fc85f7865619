/**
 * The ingest side's glue from a source (Kafka consumer, HEP listener) to the store: marks
 * retransmissions again (HEP carries no flag; `RetransmissionMarker`), writes each chunk through a
 * StoreWriter and, for Kafka, resolves only once the rows are stored (write + flush), so the consumer
 * commits only what the store holds.
 *
 * A StoreWriter's failure is sticky (docs/STORE.md, "Writer"): once a batch is given up on (the store
 * was down longer than the writer's retries), every later call rejects. As the writer's docs ask of
 * a Kafka consumer, the sink then starts a new writer; the consumer retries the uncommitted chunk
 * with it, and deduplication (event ids, insert tokens, ReplacingMergeTree) makes the retry safe.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { CaptureEvent } from '../core/event.js';
import type { EventSink, SinkContext } from './kafka/consumer.js';
import { RetransmissionMarker } from './retransmissions.js';
import {
  addWriterStats,
  emptyWriterStats,
  StoreWriter,
  type StoreWriterOptions,
  type StoreWriterStats,
} from './writer.js';

export interface StoreSinkStats {
  /** Sink calls, and those that rejected. */
  calls: number;
  failedCalls: number;
  /** Events in the chunks the sink stored (a chunk stored twice counts twice). */
  events: number;
  /** Writers replaced after a sticky failure. */
  writersReplaced: number;
  lastError: string | null;
  /** All writers' stats added up. */
  writer: StoreWriterStats;
}

export interface StoreSinkHooks {
  /**
   * Wait until each chunk is stored before resolving (default true: a Kafka consumer commits after).
   * A HEP listener has nothing to commit and lets the writer batch across chunks (false).
   */
  flushEachChunk?: boolean;
  /**
   * With flushEachChunk, chunks written within this many ms of each other (other partitions of the
   * same fetch, consumed concurrently) share one flush and so one INSERT (default 10 ms). Without it,
   * a broker handing out small fetches makes one tiny INSERT per chunk (measured: 465 events/s).
   */
  coalesceMs?: number;
  /** After a chunk is stored, before the sink resolves (and so before its offsets are committed). */
  afterStored?: (events: CaptureEvent[], context: SinkContext, totalEvents: number) => Promise<void> | void;
}

export class StoreSink {
  private writer: StoreWriter;
  /** One per process, as in `callscope ingest`: a restart forgets what it saw. */
  private readonly marker = new RetransmissionMarker();
  private readonly retired = emptyWriterStats();
  private counters = { calls: 0, failedCalls: 0, events: 0, writersReplaced: 0 };
  private lastError: string | null = null;

  constructor(
    private readonly client: ClickHouseClient,
    private readonly options: StoreWriterOptions,
    private readonly hooks: StoreSinkHooks = {},
  ) {
    this.writer = new StoreWriter(client, options);
  }

  readonly write: EventSink = async (events, context) => {
    this.counters.calls++;
    const writer = this.writer;
    try {
      await writer.write(this.marker.mark(events));
      if (this.hooks.flushEachChunk !== false) await this.durable(writer);
    } catch (error) {
      this.counters.failedCalls++;
      this.lastError = error instanceof Error ? error.message : String(error);
      if (this.writer === writer) {
        // Sticky: this writer will never work again. Its unsent rows belong to this chunk, which the
        // consumer offers again (uncommitted) to the next writer.
        addWriterStats(this.retired, writer.stats);
        this.counters.writersReplaced++;
        this.writer = new StoreWriter(this.client, this.options);
        writer.close().catch(() => undefined);
      }
      throw error;
    }
    this.counters.events += events.length;
    await this.hooks.afterStored?.(events, context, this.counters.events);
  };

  private sharedFlush: Promise<void> | null = null;
  private sharedWriter: StoreWriter | null = null;

  /** One flush for every chunk written before it starts: the consumer commits each after it. */
  private durable(writer: StoreWriter): Promise<void> {
    if (this.sharedFlush === null || this.sharedWriter !== writer) {
      this.sharedWriter = writer;
      const flush = new Promise<void>((resolve) => setTimeout(resolve, this.hooks.coalesceMs ?? 10)).then(
        () => {
          // A chunk written from here on waits for the next flush.
          if (this.sharedFlush === flush) this.sharedFlush = null;
          return writer.flush();
        },
      );
      this.sharedFlush = flush;
    }
    return this.sharedFlush;
  }

  stats(): StoreSinkStats {
    const writer = emptyWriterStats();
    addWriterStats(writer, this.retired);
    addWriterStats(writer, this.writer.stats);
    return { ...this.counters, lastError: this.lastError, writer };
  }

  /** Flushes the current writer (the client stays open: it is the caller's). */
  close(): Promise<void> {
    return this.writer.close();
  }
}
