/**
 * The one driver: runs a source into its sinks with backpressure. Every command is flags → source →
 * sinks → drive.
 *
 * - A paced source waits while the sinks take each batch (all sinks, in parallel): a file is read only
 *   as fast as the slowest sink takes it (`sinksWaitedMs` says how long the source waited).
 * - A live source cannot wait: its events queue (bounded, core/queue.ts) and go to the sinks a batch
 *   at a time; what does not fit is dropped, counted by reason and logged.
 * - A redelivering source (Kafka) gets each batch flushed to every sink before its delivery resolves;
 *   a failure, or a loss counted by any sink meanwhile, rejects the delivery so that the source offers
 *   the batch again. For the other sources a failed delivery is counted (the sinks say what they
 *   lost, and why) and they go on.
 *
 * Every event the source produced is accounted for: for each sink,
 * `events = queue dropped + sink accepted + events of batches the sink's write refused`, and the sink
 * splits what it accepted into delivered, skipped, lost (by reason) and pending (0 once flushed).
 * See docs/BACKPRESSURE.md.
 */
import type { CaptureEvent } from './event.js';
import type { HealthRecord } from './health.js';
import { type LogFields, type Logger, silentLogger } from './log.js';
import { LiveQueue, type QueueDropReason } from './queue.js';
import { type EventSink, SinkLossError, type SinkStats, totalOf } from './sink.js';
import type { EventSource, SourceOutput } from './source.js';

export interface DriveOptions {
  logger?: Logger;
  /** Live sources: events that may wait for the sinks (default 100,000); beyond, they are dropped. */
  maxQueuedEvents?: number;
  /** Stops a source that runs until stopped (interface, Kafka, HEP). */
  signal?: AbortSignal;
  /**
   * Every this many ms (0: never) one `statistics` line at info level: the source's counters, each
   * sink's accepted, delivered, pending, skipped and lost, and the live queue. Long-running commands
   * log them by default, so that a limit reached or a sink falling behind shows while it happens.
   */
  statsIntervalMs?: number;
  /** Live sources: the event queue, once made, for a watcher that reads its figures (metrics). */
  onLiveQueue?: (queue: { readonly length: number; readonly dropped: number }) => void;
}

export interface DriveResult<Result> {
  /** What the source reports about itself (a capture's facts, a consumer's counters). */
  source: Result;
  /** Each sink's figures, by sink name. */
  sinks: Record<string, SinkStats>;
  /** Events the source produced (handed to the driver; a batch a redelivering source offers again counts again). */
  events: number;
  /** Live sources: events dropped by the queue, all reasons (see `queue.dropped`). */
  droppedEvents: number;
  /** Live sources: most events the queue held at once (waiting or handed over). */
  queuePeak: number;
  /** Live sources: the queue's bound, high-water mark and drops by reason; null for other sources. */
  queue: QueueFigures | null;
  /** Paced sources: ms the source spent waiting for the sinks to take its batches (backpressure). */
  sinksWaitedMs: number;
  /** Each sink's most events accepted and not yet delivered (its `pending`), seen after a batch. */
  pendingPeak: Record<string, number>;
  /** Events of batches a sink's write rejected, by sink (not in that sink's `accepted`, or partly). */
  refused: Record<string, number>;
  /** Batches whose delivery failed (the sinks' stats say what was lost). */
  failedDeliveries: number;
}

/** A live queue's figures. */
export interface QueueFigures {
  /** The bound: events the queue may hold (`--max-queued-events`). */
  maxItems: number;
  /** Most events held at once. */
  peak: number;
  /** Events pushed into it (every event of the live source). */
  pushed: number;
  /** Events handed to the sinks. */
  delivered: number;
  /** Dropped events by reason: 'queue full' (the sinks could not keep up), 'sink failed'. */
  dropped: Partial<Record<QueueDropReason, number>>;
}

/**
 * Runs `source` until it ends or `options.signal` stops it, then flushes every sink (losses are in
 * their stats). The sinks stay open: the caller may still write a run record, and closes them.
 */
export async function drive<Result>(
  source: EventSource<Result>,
  sinks: readonly EventSink[],
  options: DriveOptions = {},
): Promise<DriveResult<Result>> {
  const logger = options.logger ?? silentLogger;
  let failedDeliveries = 0;
  let produced = 0;
  let sinksWaitedMs = 0;
  const pendingPeak: Record<string, number> = {};
  const refused: Record<string, number> = {};
  for (const sink of sinks) {
    pendingPeak[sink.name] = 0;
    refused[sink.name] = 0;
  }
  /** After a batch: what each sink holds undelivered is at its highest (its own bound shows here). */
  const notePending = (): void => {
    for (const sink of sinks) {
      const pending = sink.stats().pending;
      if (pending > (pendingPeak[sink.name] ?? 0)) pendingPeak[sink.name] = pending;
    }
  };

  const toSinks = async (events: CaptureEvent[]): Promise<void> => {
    if (events.length === 0) return;
    if (source.redelivers) {
      // A loss anywhere in this window may have taken some of these events: the source offers them again.
      const before = sinks.map((sink) => totalOf(sink.stats().lost));
      await Promise.all(sinks.map((sink) => sink.write(events)));
      notePending();
      await Promise.all(sinks.map((sink) => sink.flush()));
      sinks.forEach((sink, i) => {
        const lost = totalOf(sink.stats().lost) - before[i];
        if (lost > 0) throw new SinkLossError(sink.name, lost);
      });
      return;
    }
    const writes = sinks.map((sink) => sink.write(events));
    const results = await Promise.allSettled(writes);
    notePending();
    results.forEach((result, i) => {
      if (result.status === 'rejected') {
        failedDeliveries++;
        refused[sinks[i].name] = (refused[sinks[i].name] ?? 0) + events.length;
        logger.error('a sink refused a batch of events', {
          source: source.name,
          sink: sinks[i].name,
          events: events.length,
          error: describe(result.reason),
        });
      }
    });
  };

  const queue =
    source.pace === 'live'
      ? new LiveQueue<CaptureEvent>(toSinks, {
          maxItems: options.maxQueuedEvents,
          logger,
          sink: sinks.map((s) => s.name).join('+'),
        })
      : null;
  if (queue !== null) options.onLiveQueue?.(queue);
  const lostBySinks = (): number => sinks.reduce((n, s) => n + totalOf(s.stats().lost), 0);

  const output: SourceOutput = {
    events: queue
      ? (batch) => {
          produced += batch.length;
          for (const event of batch) queue.push(event);
          return Promise.resolve();
        }
      : async (batch) => {
          // The source waits here while the sinks take the batch: the backpressure of a file read.
          produced += batch.length;
          const started = performance.now();
          try {
            await toSinks(batch);
          } finally {
            sinksWaitedMs += performance.now() - started;
          }
        },
    health: (record: HealthRecord) => {
      record.droppedEvents = (queue?.dropped ?? 0) + lostBySinks();
      for (const sink of sinks) {
        try {
          sink.writeHealth?.(record);
        } catch (error) {
          logger.warn('capture health not written', { sink: sink.name, error: describe(error) });
        }
      }
    },
  };

  const interval = options.statsIntervalMs ?? 0;
  const ticker =
    interval > 0
      ? setInterval(() => logger.info('statistics', statisticsOf(source, sinks, queue)), interval)
      : null;
  ticker?.unref();
  let result: Result;
  try {
    result = await source.run(output, options.signal);
  } finally {
    if (ticker !== null) clearInterval(ticker);
  }
  await queue?.drain();
  for (const sink of sinks) {
    try {
      await sink.flush();
    } catch (error) {
      failedDeliveries++;
      logger.error('flushing a sink failed', { sink: sink.name, error: describe(error) });
    }
  }
  const droppedEvents = queue?.dropped ?? 0;
  const stats: Record<string, SinkStats> = {};
  for (const sink of sinks) stats[sink.name] = sink.stats();
  const lost = lostBySinks();
  const figures: QueueFigures | null =
    queue === null
      ? null
      : {
          maxItems: queue.maxItems,
          peak: queue.peak,
          pushed: queue.pushed,
          delivered: queue.delivered,
          dropped: queue.droppedByReason(),
        };
  const refusedTotal = totalOf(refused);
  if (droppedEvents > 0 || lost > 0 || refusedTotal > 0) {
    const fields: LogFields = { source: source.name, events: produced, dropped: droppedEvents, lost };
    for (const [reason, n] of Object.entries(figures?.dropped ?? {})) fields[`dropped.${reason}`] = n;
    for (const sink of sinks) {
      for (const [reason, n] of Object.entries(stats[sink.name]!.lost))
        fields[`${sink.name}.lost.${reason}`] = n;
      if ((refused[sink.name] ?? 0) > 0) fields[`${sink.name}.refused`] = refused[sink.name]!;
    }
    if (figures !== null) {
      fields.maxQueuedEvents = figures.maxItems;
      fields.queuePeak = figures.peak;
    }
    logger.error('events did not reach every sink', fields);
  }
  return {
    source: result,
    sinks: stats,
    events: produced,
    droppedEvents,
    queuePeak: queue?.peak ?? 0,
    queue: figures,
    sinksWaitedMs: Math.round(sinksWaitedMs),
    pendingPeak,
    refused,
    failedDeliveries,
  };
}

/** One flat line: the source's counters, then `<sink>.accepted`, `<sink>.lost`... and the queue. */
function statisticsOf(
  source: EventSource<unknown>,
  sinks: readonly EventSink[],
  queue: LiveQueue<CaptureEvent> | null,
): LogFields {
  const fields: LogFields = { source: source.name, ...source.progress?.() };
  for (const sink of sinks) {
    const s = sink.stats();
    fields[`${sink.name}.accepted`] = s.accepted;
    fields[`${sink.name}.delivered`] = s.delivered;
    fields[`${sink.name}.pending`] = s.pending;
    const skipped = totalOf(s.skipped);
    const lost = totalOf(s.lost);
    if (skipped > 0) fields[`${sink.name}.skipped`] = skipped;
    if (lost > 0) fields[`${sink.name}.lost`] = lost;
  }
  if (queue !== null) {
    fields['queue.length'] = queue.length;
    fields['queue.peak'] = queue.peak;
    fields['queue.max'] = queue.maxItems;
    fields['queue.dropped'] = queue.dropped;
    for (const [reason, n] of Object.entries(queue.droppedByReason())) fields[`queue.dropped.${reason}`] = n;
  }
  return fields;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
