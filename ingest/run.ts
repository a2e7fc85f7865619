/**
 * Single-process mode: a capture source (a file or a live interface) driven into the store (embedded
 * chDB or a ClickHouse server, through @clickhouse/client) and the summary, with the VM inventory kept
 * current beside it; at the end the run's record (capture_runs) is stored. A file is read only as
 * fast as the store takes its events, so memory stays bounded however large it is; a live capture
 * cannot wait, so its events queue (bounded) and what the store cannot keep up with is dropped and
 * counted (core/drive.ts).
 */
import { randomUUID } from 'node:crypto';
import { CallsJob, rebuildCalls } from '../analyze/calls/job.js';
import type { LinkOptions } from '../analyze/calls/linker.js';
import { type AnalyzeSummary, CaptureSummary } from '../analyze/summary.js';
import type { VmAttribution } from '../capture/attribution.js';
import {
  type CaptureFacts,
  FileSource,
  type FileSourceOptions,
  InterfaceSource,
  type InterfaceSourceOptions,
} from '../capture/sources.js';
import { type DriveResult, drive } from '../core/drive.js';
import type { Logger } from '../core/log.js';
import type { EventSink } from '../core/sink.js';
import type { EventSource } from '../core/source.js';
import { InventoryRecorder, type InventorySource } from './inventory.js';
import type { CallscopeMetrics } from './metrics/metrics.js';
import { captureRunFromSummary } from './rows.js';
import { qualifiedName } from './schema/ddl.js';
import { migrate } from './schema/migrate.js';
import type { Store } from './store/client.js';
import { StoreSink, type StoreSinkStats } from './store-sink.js';
import type { StoreWriterStats } from './writer.js';

export interface StoreCaptureOptions {
  store: Store;
  database: string;
  /** Days rows are kept; 0 forever. Applied by the migration (changing it alters the tables' TTL). */
  ttlDays: number;
  /** Defaults to a new UUID. */
  runId?: string;
  logger?: Logger;
  captureId?: number;
  nodeName?: string;
  /** With `vms`: the VM inventory to keep in vm_inventory during the run, with the addresses learned. */
  inventory?: InventorySource;
  vms?: VmAttribution;
  /** Live: events that may wait for the store (default 100,000); beyond, they are dropped and counted. */
  maxQueuedEvents?: number;
  /** Rows that make a store batch full (the writer's default when undefined); the sink holds two at most. */
  storeBatchRows?: number;
  /** Stops a live capture. */
  signal?: AbortSignal;
  /** A statistics line every this many ms (core/drive.ts; 0 none). */
  statsIntervalMs?: number;
  /** More sinks beside the store and the summary (a test's observer, say). */
  sinks?: EventSink[];
  /** How B2BUA legs are linked (analyze/calls/linker.ts), in the summary and the calls table alike. */
  link?: LinkOptions;
  /**
   * Keep the calls table current during the run (a cycle every this many ms), not only at its end:
   * live captures do (2,000 by default); a file's calls are computed once its events are stored.
   */
  callsIntervalMs?: number;
  /**
   * Prometheus metrics (ingest/metrics/): the run's capture, store, event queue and calls are
   * watched, its events counted, each settled call counted once.
   */
  metrics?: CallscopeMetrics;
}

export interface StoreCaptureResult {
  runId: string;
  summary: AnalyzeSummary;
  /** The store sink's figures: events accepted, delivered, skipped and lost (with reasons). */
  store: StoreSinkStats;
  /** All store writers' figures added up (rows per table, batches, retries). */
  writer: StoreWriterStats;
  /** Live: events dropped because the store could not keep up, and those the store lost. */
  droppedEvents: number;
  /** Live: most events that waited for the store at once. */
  queuePeak: number;
  /**
   * The driver's backpressure figures (docs/BACKPRESSURE.md): events the capture produced, the live
   * queue (bound, high-water mark, drops by reason), how long a file read waited for the sinks, each
   * sink's most pending events, and events of writes a sink refused.
   */
  flow: Pick<DriveResult<CaptureFacts>, 'events' | 'queue' | 'sinksWaitedMs' | 'pendingPeak' | 'refused'>;
  /** Live: health rows stored. */
  healthRows: number;
  /** The calls table: calls computed and versions written for this run (error: why none were). */
  calls: { computed: number; written: number; error: string | null };
}

/** Drives `source` into the store and the summary, then stores the run; resolves once all is stored. */
export async function storeCapture(
  source: EventSource<CaptureFacts>,
  options: StoreCaptureOptions,
): Promise<StoreCaptureResult> {
  const { store, database, ttlDays, logger } = options;
  const runId = options.runId ?? randomUUID();
  const { eventIds } = await migrate(store.client, { database, ttlDays, logger });
  const storeSink = new StoreSink(store.client, {
    database,
    runId,
    logger,
    inserter: store.inserter,
    eventIds,
    maxRows: options.storeBatchRows,
  });
  const metrics = options.metrics;
  metrics?.watchCapture(source);
  metrics?.watchSinks([storeSink]);
  metrics?.watchStore(storeSink);
  const onSettled = metrics?.countSettledCalls;
  const summary = new CaptureSummary({ logger: options.logger, calls: { link: options.link } });
  const job =
    options.callsIntervalMs !== undefined && options.callsIntervalMs > 0
      ? new CallsJob({
          client: store.client,
          database,
          writer: storeSink,
          logger,
          link: options.link,
          intervalMs: options.callsIntervalMs,
          onSettled,
        })
      : null;
  if (job !== null) metrics?.watchCallsJob(job);
  const recorder =
    options.inventory !== undefined && options.vms !== undefined
      ? new InventoryRecorder({
          source: options.inventory,
          attribution: options.vms,
          write: (entries) => storeSink.writeInventory(entries),
          logger,
        })
      : null;
  try {
    job?.start();
    const sinks = [storeSink, ...summary.sinks, ...(metrics ? [metrics.sink] : []), ...(options.sinks ?? [])];
    const result = await drive(source, sinks, {
      logger,
      signal: options.signal,
      maxQueuedEvents: options.maxQueuedEvents,
      statsIntervalMs: options.statsIntervalMs,
      onLiveQueue: metrics ? (queue) => metrics.watchLiveQueue(queue) : undefined,
    });
    await recorder?.stop();
    await storeSink.flush();
    const caughtUp = (await job?.stop()) ?? false;
    const s = await summary.of(result.source);
    // The run's calls from what the store holds, closed at the capture's end as `analyze` closes them.
    // When the live calls job caught up, only the calls it left open are computed again: reading back
    // every message of a long run (millions) would take longer than the run's stop may, and the
    // engine's memory with it. The events are stored whatever happens here: a failure is reported,
    // and a rebuild can redo it.
    const calls = await rebuildCalls({
      client: store.client,
      database,
      writer: storeSink,
      logger,
      link: options.link,
      scope: caughtUp
        ? {
            where: `run_id = {run:String} AND call_id IN (SELECT call_id FROM ${qualifiedName(database, 'calls')} FINAL WHERE run_id = {run:String} AND open)`,
            params: { run: runId },
          }
        : { where: 'run_id = {run:String}', params: { run: runId } },
      runId,
      onSettled,
      closeAtMs:
        result.source.lastTimestamp === null ? undefined : Math.trunc(result.source.lastTimestamp * 1000),
    }).catch((error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      logger?.error('calls of the run not computed; `callscope calls --rebuild --run ID` computes them', {
        runId,
        error: message,
      });
      return { callsComputed: 0, versionsWritten: 0, error: message };
    });
    await storeSink.recordRun(
      captureRunFromSummary(s, { runId, captureId: options.captureId, nodeName: options.nodeName }),
    );
    const stats = storeSink.stats();
    const lost = stats.accepted - stats.delivered - totalSkipped(stats);
    return {
      runId,
      summary: s,
      store: stats,
      writer: stats.writer,
      droppedEvents: result.droppedEvents + Math.max(0, lost),
      queuePeak: result.queuePeak,
      flow: {
        events: result.events,
        queue: result.queue,
        sinksWaitedMs: result.sinksWaitedMs,
        pendingPeak: result.pendingPeak,
        refused: result.refused,
      },
      healthRows: stats.healthRows,
      calls: {
        computed: calls.callsComputed,
        written: calls.versionsWritten,
        error: 'error' in calls ? calls.error : null,
      },
    };
  } finally {
    await job?.stop();
    await recorder?.stop();
    await storeSink.close();
  }
}

function totalSkipped(stats: StoreSinkStats): number {
  return Object.values(stats.skipped).reduce((a, b) => a + b, 0);
}

/** A capture file into the store (`callscope run --pcap`). */
export function ingestFile(
  path: string,
  options: StoreCaptureOptions & FileSourceOptions,
): Promise<StoreCaptureResult> {
  return storeCapture(new FileSource(path, options), options);
}

/** A live interface into the store until `signal` aborts (`callscope run --interface`). */
export function ingestInterface(
  name: string,
  options: StoreCaptureOptions & InterfaceSourceOptions,
): Promise<StoreCaptureResult> {
  return storeCapture(new InterfaceSource(name, options), { callsIntervalMs: 2000, ...options });
}
