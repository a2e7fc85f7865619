/**
 * The one driver: runs a source into its sinks with backpressure. Every command is flags → source →
 * sinks → drive.
 *
 * - A paced source waits while the sinks take each batch (all sinks, in parallel).
 * - A live source cannot wait: its events queue (bounded, core/queue.ts) and go to the sinks a batch
 *   at a time; what does not fit is dropped, counted and logged.
 * - A redelivering source (Kafka) gets each batch flushed to every sink before its delivery resolves;
 *   a failure, or a loss counted by any sink meanwhile, rejects the delivery so that the source offers
 *   the batch again. For the other sources a failed delivery is counted (the sinks say what they
 *   lost, and why) and they go on.
 */
import type { CaptureEvent } from './event.js';
import type { HealthRecord } from './health.js';
import { type LogFields, type Logger, silentLogger } from './log.js';
import { LiveQueue } from './queue.js';
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
  /** Live sources: events dropped because the sinks could not keep up. */
  droppedEvents: number;
  /** Live sources: most events that waited at once. */
  queuePeak: number;
  /** Batches whose delivery failed (the sinks' stats say what was lost). */
  failedDeliveries: number;
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

  const toSinks = async (events: CaptureEvent[]): Promise<void> => {
    if (events.length === 0) return;
    if (source.redelivers) {
      // A loss anywhere in this window may have taken some of these events: the source offers them again.
      const before = sinks.map((sink) => totalOf(sink.stats().lost));
      await Promise.all(sinks.map((sink) => sink.write(events)));
      await Promise.all(sinks.map((sink) => sink.flush()));
      sinks.forEach((sink, i) => {
        const lost = totalOf(sink.stats().lost) - before[i];
        if (lost > 0) throw new SinkLossError(sink.name, lost);
      });
      return;
    }
    const writes = sinks.map((sink) => sink.write(events));
    const results = await Promise.allSettled(writes);
    results.forEach((result, i) => {
      if (result.status === 'rejected') {
        failedDeliveries++;
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
          for (const event of batch) queue.push(event);
          return Promise.resolve();
        }
      : toSinks,
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
  if (droppedEvents > 0 || lost > 0)
    logger.error('events did not reach every sink', { source: source.name, dropped: droppedEvents, lost });
  return { source: result, sinks: stats, droppedEvents, queuePeak: queue?.peak ?? 0, failedDeliveries };
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
    fields['queue.dropped'] = queue.dropped;
  }
  return fields;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
