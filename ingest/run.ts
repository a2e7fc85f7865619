/**
 * Single-process mode: a capture file → the capture pipeline → an in-process queue → the store (embedded
 * chDB or a ClickHouse server, always through @clickhouse/client). Reading pauses while the writer has
 * no room, so memory stays bounded however large the file is.
 *
 * Live (`ingestInterface`): an interface cannot be paused, so events wait in a bounded queue
 * (capture/live/queue.ts) that hands them to the writer a batch at a time; when the store falls too far
 * behind, events are dropped, counted (health rows, result) and logged. Capture-health records go to
 * capture_health as they come.
 */
import { randomUUID } from 'node:crypto';
import {
  type AnalyzeInterfaceOptions,
  type AnalyzeOptions,
  type AnalyzeSummary,
  analyzeFile,
  analyzeInterface,
} from '../capture/analyze.js';
import type { CaptureHealth } from '../capture/live/stats.js';
import type { CaptureEvent } from '../core/event.js';
import { LiveQueue } from '../core/queue.js';
import type { HealthRecord } from './health.js';
import { InventoryRecorder, type InventorySource } from './inventory.js';
import { captureRunFromSummary } from './rows.js';
import { migrate } from './schema/migrate.js';
import type { Store } from './store/client.js';
import { addWriterStats, StoreWriter, type StoreWriterStats } from './writer.js';

export interface IngestFileOptions extends Omit<AnalyzeOptions, 'onEvent' | 'pause'> {
  store: Store;
  database: string;
  /** Days rows are kept; 0 forever. Applied by the migration (changing it alters the tables' TTL). */
  ttlDays: number;
  /** Defaults to a new UUID. */
  runId?: string;
  /** VM inventory to keep in vm_inventory during the run (with `vms`, whose learned addresses it adds). */
  inventory?: InventorySource;
}

export interface IngestFileResult {
  runId: string;
  summary: AnalyzeSummary;
  writer: StoreWriterStats;
}

/** Reads `path` into the store and records the run; resolves once every row is stored. */
export async function ingestFile(path: string, options: IngestFileOptions): Promise<IngestFileResult> {
  const { store, database, ttlDays, inventory, ...analyze } = options;
  const runId = options.runId ?? randomUUID();
  await migrate(store.client, { database, ttlDays, logger: options.logger });
  const writer = new StoreWriter(store.client, { database, runId, logger: options.logger });
  const recorder = recordInventory(inventory, options, () => writer);
  let queue: CaptureEvent[] = [];
  const drain = (): Promise<void> => {
    const batch = queue;
    queue = [];
    return writer.write(batch);
  };
  try {
    const summary = await analyzeFile(path, {
      ...analyze,
      onEvent: (event) => {
        queue.push(event);
      },
      // After each read chunk its events go to the writer; reading resumes once the writer took them
      // (at once, unless a batch is in flight and the next one is full).
      pause: () => (queue.length === 0 ? null : drain()),
    });
    await drain();
    await writer.flush();
    await recorder?.stop();
    await writer.writeCaptureRun(
      captureRunFromSummary(summary, { runId, captureId: options.captureId, nodeName: options.nodeName }),
    );
    return { runId, summary, writer: { ...writer.stats } };
  } finally {
    await recorder?.stop();
    await writer.close().catch(() => {});
  }
}

export interface IngestInterfaceOptions extends Omit<AnalyzeInterfaceOptions, 'onEvent'> {
  store: Store;
  database: string;
  ttlDays: number;
  runId?: string;
  inventory?: InventorySource;
  /** Events that may wait for the store (default 100 000); beyond, events are dropped and counted. */
  maxQueuedEvents?: number;
}

export interface IngestInterfaceResult extends IngestFileResult {
  /** Events dropped because the store could not keep up (or a batch was lost). */
  droppedEvents: number;
  /** Most events that waited for the store at once. */
  queuePeak: number;
  /** Health rows stored. */
  healthRows: number;
}

/** A writer whose event batch was lost: its failure is sticky, every later call rejects. */
function hasFailed(writer: StoreWriter): boolean {
  return writer.stats.failures > 0;
}

/**
 * Events a writer accepted that the store never got. The capture pipeline makes SIP events (one
 * sip_messages row) and RTP reports (one media_reports row, plus an rtcp_reports row with RTCP): every
 * stored event has exactly one row in sip_messages or media_reports.
 */
export function unstoredEvents(stats: StoreWriterStats): number {
  const stored = stats.rowsByTable.sip_messages + stats.rowsByTable.media_reports;
  return Math.max(0, stats.events - stats.skipped - stored);
}

/** Health writes that may wait for the store at once; beyond, health records are not stored. */
const MAX_PENDING_HEALTH_WRITES = 100;

/**
 * Captures on `name` into the store until `signal` aborts (or `durationSec` / `packetLimit`), then
 * stores what is still queued, the final health row and the run; resolves once every row is stored.
 */
export async function ingestInterface(
  name: string,
  options: IngestInterfaceOptions,
): Promise<IngestInterfaceResult> {
  const { store, database, ttlDays, maxQueuedEvents, inventory, ...analyze } = options;
  const runId = options.runId ?? randomUUID();
  const logger = options.logger;
  await migrate(store.client, { database, ttlDays, logger });
  const writerOptions = { database, runId, logger };
  // A writer's failure is sticky (the store was down longer than its retries): what it had batched
  // is lost and counted as dropped, and a new writer carries on.
  const retired: StoreWriter[] = [];
  let writer = new StoreWriter(store.client, writerOptions);
  const retire = (failed: StoreWriter): void => {
    if (writer !== failed) return;
    retired.push(failed);
    writer = new StoreWriter(store.client, writerOptions);
    // Stops its deadline timer; rejects with the failure, which the writer has logged.
    failed.close().catch(() => undefined);
    logger?.warn('store writer failed; continuing with a new one', {
      interface: name,
      lostEvents: unstoredEvents(failed.stats),
    });
  };
  /** The writer to use now: a failed one is replaced first. */
  const usable = (): StoreWriter => {
    if (hasFailed(writer)) retire(writer);
    return writer;
  };
  const lostByWriters = (): number => retired.reduce((n, w) => n + unstoredEvents(w.stats), 0);
  const recorder = recordInventory(inventory, options, usable);
  // write() resolves once events are batched; a batch that fails later makes a later write() reject.
  // Events of this call the failed writer did not take were never tried: a new writer gets them.
  const write = async (events: CaptureEvent[]): Promise<void> => {
    let rest = events;
    while (rest.length > 0) {
      const current = usable();
      const before = current.stats.events;
      try {
        await current.write(rest);
        return;
      } catch (error) {
        if (!hasFailed(current)) throw error;
        // A fresh writer accepts at least one event before it can fail: this loop always advances.
        rest = rest.slice(current.stats.events - before);
        retire(current);
      }
    }
  };
  const queue = new LiveQueue<CaptureEvent>(write, { maxItems: maxQueuedEvents, logger, sink: 'store' });
  const dropped = (): number => queue.dropped + lostByWriters();
  let healthRows = 0;
  let healthSkipped = 0;
  const healthWrites = new Set<Promise<void>>();
  const onHealth = (health: CaptureHealth): void => {
    const target = usable();
    const record: HealthRecord = {
      ...health,
      droppedEvents: dropped(),
      captureId: options.captureId ?? 0,
      nodeName: options.nodeName ?? '',
    };
    if (!health.final && healthWrites.size >= MAX_PENDING_HEALTH_WRITES) {
      // The store hangs: do not pile up inserts (the final record is always tried).
      if (healthSkipped++ % 100 === 0)
        logger?.error('capture health not stored: the store does not answer', {
          interface: name,
          pending: healthWrites.size,
          skipped: healthSkipped,
        });
    } else {
      const done: Promise<void> = target
        .writeHealth([record])
        .then(
          () => {
            healthRows++;
          },
          (error: unknown) =>
            logger?.error('capture health not stored', {
              interface: name,
              error: error instanceof Error ? error.message : String(error),
            }),
        )
        .catch(() => undefined)
        .finally(() => healthWrites.delete(done));
      healthWrites.add(done);
    }
    options.onHealth?.(health);
  };
  try {
    const summary = await analyzeInterface(name, {
      ...analyze,
      onEvent: (event) => queue.push(event),
      onHealth,
    });
    await queue.drain();
    const last = usable();
    try {
      await last.flush();
    } catch (error) {
      if (!hasFailed(last)) throw error;
      // Counted as dropped; the run's row still goes, through a new writer.
      retire(last);
    }
    await Promise.all(healthWrites);
    await recorder?.stop();
    await usable().writeCaptureRun(
      captureRunFromSummary(summary, { runId, captureId: options.captureId, nodeName: options.nodeName }),
    );
    const stats = {
      ...writer.stats,
      skippedByReason: { ...writer.stats.skippedByReason },
      rowsByTable: { ...writer.stats.rowsByTable },
    };
    for (const r of retired) addWriterStats(stats, r.stats);
    const droppedEvents = dropped();
    if (droppedEvents > 0)
      logger?.error('events dropped: the store could not keep up with the live capture', {
        interface: name,
        dropped: droppedEvents,
      });
    return {
      runId,
      summary,
      writer: stats,
      droppedEvents,
      queuePeak: queue.peak,
      healthRows,
    };
  } finally {
    await recorder?.stop();
    await writer.close().catch(() => {});
  }
}

function recordInventory(
  source: InventorySource | undefined,
  options: Pick<AnalyzeOptions, 'vms' | 'logger'>,
  writer: () => StoreWriter,
): InventoryRecorder | null {
  if (source === undefined || options.vms === undefined) return null;
  return new InventoryRecorder({ source, attribution: options.vms, writer, logger: options.logger });
}
