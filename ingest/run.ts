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
import type { CaptureEvent } from '../capture/event.js';
import { LiveQueue } from '../capture/live/queue.js';
import type { CaptureHealth } from '../capture/live/stats.js';
import type { HealthRecord } from './health.js';
import { InventoryRecorder, type InventorySource } from './inventory.js';
import { captureRunFromSummary } from './rows.js';
import { migrate } from './schema/migrate.js';
import type { Store } from './store/client.js';
import { StoreWriter, type StoreWriterStats } from './writer.js';

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

function addWriterStats(into: StoreWriterStats, s: StoreWriterStats): void {
  into.events += s.events;
  into.skipped += s.skipped;
  for (const [k, v] of Object.entries(s.skippedByReason))
    into.skippedByReason[k] = (into.skippedByReason[k] ?? 0) + v;
  into.rows += s.rows;
  for (const table of Object.keys(into.rowsByTable) as Array<keyof StoreWriterStats['rowsByTable']>)
    into.rowsByTable[table] += s.rowsByTable[table];
  into.bytes += s.bytes;
  into.batches += s.batches;
  into.retries += s.retries;
  into.failures += s.failures;
}

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
  const retired: StoreWriterStats[] = [];
  let writer = new StoreWriter(store.client, writerOptions);
  const recorder = recordInventory(inventory, options, () => writer);
  // A writer's failure is sticky (the store was down longer than its retries): its batch is lost,
  // counted by the queue, and a new writer carries on.
  const write = async (events: CaptureEvent[]): Promise<void> => {
    const current = writer;
    try {
      await current.write(events);
    } catch (error) {
      if (writer === current) {
        retired.push({ ...current.stats });
        writer = new StoreWriter(store.client, writerOptions);
        current.close().catch(() => undefined);
      }
      throw error;
    }
  };
  const queue = new LiveQueue<CaptureEvent>(write, { maxItems: maxQueuedEvents, logger, sink: 'store' });
  let healthRows = 0;
  const healthWrites: Promise<void>[] = [];
  const onHealth = (health: CaptureHealth): void => {
    const record: HealthRecord = {
      ...health,
      droppedEvents: queue.dropped,
      captureId: options.captureId ?? 0,
      nodeName: options.nodeName ?? '',
    };
    const done = writer.writeHealth([record]).then(
      () => {
        healthRows++;
      },
      (error: Error) => logger?.error('capture health not stored', { interface: name, error: error.message }),
    );
    healthWrites.push(done);
    if (healthWrites.length > 100) healthWrites.splice(0, 50);
    options.onHealth?.(health);
  };
  try {
    const summary = await analyzeInterface(name, {
      ...analyze,
      onEvent: (event) => queue.push(event),
      onHealth,
    });
    await queue.drain();
    await writer.flush();
    await Promise.all(healthWrites);
    await recorder?.stop();
    await writer.writeCaptureRun(
      captureRunFromSummary(summary, { runId, captureId: options.captureId, nodeName: options.nodeName }),
    );
    const stats = {
      ...writer.stats,
      skippedByReason: { ...writer.stats.skippedByReason },
      rowsByTable: { ...writer.stats.rowsByTable },
    };
    for (const r of retired) addWriterStats(stats, r);
    if (queue.dropped > 0)
      logger?.error('events dropped: the store could not keep up with the live capture', {
        interface: name,
        dropped: queue.dropped,
      });
    return {
      runId,
      summary,
      writer: stats,
      droppedEvents: queue.dropped,
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
