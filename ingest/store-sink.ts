/**
 * The store as a sink (core/sink.ts): events, capture health, the VM inventory and run records go
 * through a StoreWriter (batched, deduplicating inserts) into the embedded chDB store or a
 * ClickHouse server.
 *
 * A StoreWriter's failure is sticky (docs/STORE.md, "Writer"): once a batch is given up on (the store
 * was down longer than the writer's retries), every later call rejects. This is the one place that
 * policy is answered: the failed writer's unsent events are counted lost ('store failed'), a new
 * writer takes over, the events of the current write that the failed writer never took go to the new
 * one. The driver sees the loss in the stats: a Kafka source then offers its uncommitted chunk again
 * (deduplication by event id, insert token and ReplacingMergeTree makes that safe); the other sources
 * count the loss and carry on.
 */

import type { ClickHouseClient } from '@clickhouse/client';
import type { AlertTransition } from '../core/alert.js';
import type { CaptureEvent } from '../core/event.js';
import type { HealthRecord } from '../core/health.js';
import { type Logger, silentLogger } from '../core/log.js';
import { countReason, type EventSink, emptySinkStats, type SinkStats } from '../core/sink.js';
import type { VmInventoryEntry } from '../core/vm.js';
import type { CallVersion } from './call-rows.js';
import type { CaptureRun } from './rows.js';
import {
  addWriterStats,
  emptyWriterStats,
  StoreWriter,
  type StoreWriterOptions,
  type StoreWriterStats,
} from './writer.js';

export interface StoreSinkOptions extends StoreWriterOptions {
  /**
   * Flushes asked for within this many ms of each other (chunks of several Kafka partitions consumed
   * concurrently) share one flush and so one INSERT (default 10 ms). Without it, a broker handing out
   * small fetches makes one tiny INSERT per chunk (measured: 465 events/s).
   */
  coalesceMs?: number;
  /** Health writes that may wait for the store at once; beyond, health records are not stored (100). */
  maxPendingHealthWrites?: number;
}

export interface StoreSinkStats extends SinkStats {
  /** Writers replaced after a sticky failure. */
  writersReplaced: number;
  lastError: string | null;
  healthRows: number;
  inventoryRows: number;
  /** All writers' figures added up. */
  writer: StoreWriterStats;
}

const LOST_REASON = 'store failed';

/** Events a writer accepted that the store never got. */
function unstored(stats: StoreWriterStats): number {
  return Math.max(0, stats.events - stats.skipped - stats.delivered);
}

export class StoreSink implements EventSink {
  readonly name = 'store';
  private writer: StoreWriter;
  private readonly logger: Logger;
  private readonly retired = emptyWriterStats();
  private readonly lost: Record<string, number> = {};
  private lastFailure: unknown = null;
  private writersReplaced = 0;
  private healthRows = 0;
  private healthSkipped = 0;
  private inventoryRows = 0;
  private readonly healthWrites = new Set<Promise<void>>();
  private sharedFlush: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly client: ClickHouseClient,
    private readonly options: StoreSinkOptions,
  ) {
    this.logger = options.logger ?? silentLogger;
    this.writer = new StoreWriter(client, options);
  }

  async write(events: readonly CaptureEvent[]): Promise<void> {
    let rest = events;
    while (rest.length > 0) {
      const writer = this.usable();
      const before = writer.stats.events;
      try {
        await writer.write(rest);
        return;
      } catch (error) {
        if (!failed(writer)) throw error;
        // A fresh writer accepts at least one event before it can fail: this loop always advances.
        rest = rest.slice(writer.stats.events - before);
        this.retire(writer, error);
      }
    }
  }

  /**
   * Resolves once everything written is stored or counted lost. Flushes asked for close together
   * share one (see coalesceMs).
   */
  flush(): Promise<void> {
    if (this.sharedFlush === null) {
      const flush = new Promise<void>((resolve) => setTimeout(resolve, this.options.coalesceMs ?? 10)).then(
        async () => {
          // A flush asked for from here on waits for the next one.
          if (this.sharedFlush === flush) this.sharedFlush = null;
          const writer = this.writer;
          try {
            await writer.flush();
          } catch (error) {
            if (!failed(writer)) throw error;
            this.retire(writer, error);
          }
          await Promise.all(this.healthWrites);
        },
      );
      this.sharedFlush = flush;
    }
    return this.sharedFlush;
  }

  /**
   * Stores a live capture's health record without waiting. While the store hangs, at most
   * maxPendingHealthWrites are in flight; later ones are not stored (the final record always is).
   */
  writeHealth(record: HealthRecord): void {
    const max = this.options.maxPendingHealthWrites ?? 100;
    if (!record.final && this.healthWrites.size >= max) {
      if (this.healthSkipped++ % 100 === 0)
        this.logger.error('capture health not stored: the store does not answer', {
          interface: record.interface,
          pending: this.healthWrites.size,
          skipped: this.healthSkipped,
        });
      return;
    }
    const done: Promise<void> = this.usable()
      .writeHealth([record])
      .then(
        () => {
          this.healthRows++;
        },
        (error: unknown) =>
          this.logger.error('capture health not stored', {
            interface: record.interface,
            error: describe(error),
          }),
      )
      .finally(() => this.healthWrites.delete(done));
    this.healthWrites.add(done);
  }

  async writeInventory(entries: readonly VmInventoryEntry[]): Promise<void> {
    await this.usable().writeVmInventory(entries);
    this.inventoryRows += entries.length;
  }

  /** Stores call versions (analyze/calls/job.ts): the calls table. */
  async writeCalls(
    versions: readonly CallVersion[],
    tombstones: ReadonlyArray<{ callId: string; start: number }>,
    version: bigint,
  ): Promise<void> {
    await this.usable().writeCalls(versions, tombstones, version);
  }

  /** Stores alert transitions (analyze/alerts/evaluator.ts): the alerts table. */
  async writeAlerts(transitions: readonly AlertTransition[], evaluator: string): Promise<void> {
    await this.usable().writeAlerts(transitions, evaluator);
  }

  /** Stores (or replaces: the newest wins) the record of a capture run, once its events are stored. */
  async recordRun(run: CaptureRun): Promise<void> {
    await this.usable().writeCaptureRun(run);
  }

  /** Flushes (a loss is in the stats) and stops; the client stays open: it is the caller's. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      await this.writer.close().catch(() => undefined);
    }
  }

  stats(): StoreSinkStats {
    // A writer that failed since the last call is replaced now, so that its loss is counted.
    this.usable();
    const writer = emptyWriterStats();
    addWriterStats(writer, this.retired);
    addWriterStats(writer, this.writer.stats);
    const lost = { ...this.lost };
    const pending = Math.max(0, writer.events - writer.skipped - writer.delivered - (lost[LOST_REASON] ?? 0));
    return {
      ...emptySinkStats(),
      accepted: writer.events,
      delivered: writer.delivered,
      pending,
      skipped: { ...writer.skippedByReason },
      lost,
      writersReplaced: this.writersReplaced,
      lastError: this.lastFailure === null ? null : describe(this.lastFailure),
      healthRows: this.healthRows,
      inventoryRows: this.inventoryRows,
      writer,
    };
  }

  /** The writer to use now: a failed one is replaced first. */
  private usable(): StoreWriter {
    if (failed(this.writer)) this.retire(this.writer, this.lastFailure);
    return this.writer;
  }

  private retire(writer: StoreWriter, error: unknown): void {
    if (writer !== this.writer) return;
    const lost = unstored(writer.stats);
    addWriterStats(this.retired, writer.stats);
    countReason(this.lost, LOST_REASON, lost);
    this.lastFailure = error;
    this.writersReplaced++;
    // The store's event id scheme, once a writer learned it, is not read again.
    this.writer = new StoreWriter(this.client, {
      ...this.options,
      eventIds: this.options.eventIds ?? writer.eventIds ?? undefined,
    });
    // Stops its deadline timer; rejects with the failure, which the writer has logged.
    writer.close().catch(() => undefined);
    this.logger.warn('store writer failed; continuing with a new one', {
      database: this.options.database,
      lostEvents: lost,
      error: describe(error),
    });
  }
}

/** A writer whose batch was lost: its failure is sticky, every later call rejects. */
function failed(writer: StoreWriter): boolean {
  return writer.stats.failures > 0;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
